//! Shared test helpers: fixture paths, open_clip's expected values, running the binary.

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const MODELS: [&str; 3] = [
    "tiny-gelu-p14",
    "tiny-quickgelu-p32-squash",
    "tiny-gelu-p16-bilinear",
];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A local model directory (config + whichever weights file it has) loaded on the CPU.
pub fn load(dir: &Path) -> whyxray::model::Clip {
    let cfg = whyxray::model::config::OpenClipConfig::from_file(&dir.join("open_clip_config.json"))
        .unwrap();
    let weights = whyxray::source::LOCAL_WEIGHTS
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .unwrap();
    whyxray::model::Clip::load(cfg, &weights, &candle_core::Device::Cpu).unwrap()
}

pub fn model_dir(name: &str) -> PathBuf {
    root().join("tests/fixtures/models").join(name)
}

pub fn expected() -> &'static Value {
    static E: OnceLock<Value> = OnceLock::new();
    E.get_or_init(|| {
        let text =
            std::fs::read_to_string(root().join("tests/fixtures/expected/expected.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

pub fn model_expected(name: &str) -> &'static Value {
    &expected()["models"][name]
}

/// Where a fixture image lives: `tests/data`, or `../shared/data/xray` for files whose
/// licence does not allow a copy here.
pub fn image_path(name: &str, kind: &str) -> PathBuf {
    if kind == "shared" {
        root().join("../shared/data/xray").join(name)
    } else {
        root().join("tests/data").join(name)
    }
}

/// (file name, kind, row index in the expected arrays) for every reference image.
pub fn images(model: &str) -> Vec<(String, String, usize)> {
    let e = model_expected(model);
    let names = e["images"].as_array().unwrap();
    let kinds = e["image_kinds"].as_array().unwrap();
    names
        .iter()
        .zip(kinds)
        .enumerate()
        .map(|(i, (n, k))| {
            (
                n.as_str().unwrap().to_string(),
                k.as_str().unwrap().to_string(),
                i,
            )
        })
        .collect()
}

pub fn matrix(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

/// open_clip's preprocessed tensor for an image, [3, S, S] flattened.
pub fn reference_pixels(model: &str, image: &str) -> Vec<f32> {
    let file = Path::new(image).file_name().unwrap().to_str().unwrap();
    let path = root()
        .join("tests/fixtures/expected/pixels")
        .join(model)
        .join(format!("{file}.f32.gz"));
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

pub fn one_minus_cos(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    (1.0 - dot / (na * nb)).abs()
}

/// ||a - b|| / ||b||: linear in an error, where 1 - cos is quadratic.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let n: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (d / n).sqrt()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The real executable, with a hub cache that holds nothing and no network allowed,
/// unless a test says otherwise.
pub fn whyxray() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_whyxray"));
    cmd.env("HF_HUB_CACHE", root().join("target/empty-hub-cache"))
        .env("HF_HUB_OFFLINE", "1")
        // Parity is checked against CPU float32: a CUDA build on a machine with a GPU would
        // otherwise run the tests there in bf16. A test that wants a GPU passes --device.
        .env("WHYXRAY_DEVICE", "cpu")
        .env("WHYXRAY_CACHE", root().join("target/test-whyxray-cache"))
        .env_remove("HF_HOME")
        .stdin(Stdio::null());
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run whyxray")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A DICOM with its Rows and Columns (explicit VR little endian) set to 65535.
pub fn huge_dicom(mut bytes: Vec<u8>) -> Vec<u8> {
    for tag in [
        [0x28, 0, 0x10, 0, b'U', b'S', 2, 0],
        [0x28, 0, 0x11, 0, b'U', b'S', 2, 0],
    ] {
        let at = bytes.windows(8).position(|w| w == tag).unwrap() + 8;
        bytes[at..at + 2].copy_from_slice(&[0xff, 0xff]);
    }
    bytes
}

/// open_clip's probabilities at S = 100 for one fixture image, labels in `labels` order.
pub fn expected_row(model: &str, image: &str) -> Vec<f32> {
    let (_, _, i) = images(model)
        .into_iter()
        .find(|(n, _, _)| n == image)
        .unwrap();
    matrix(&model_expected(model)["probs_scale_100"])[i].clone()
}

/// A classify CSV row (`file,<probabilities>,error`) of `image` that scored: its probabilities.
pub fn scored_row(row: &str, image: &str) -> Vec<f32> {
    let fields: Vec<&str> = row.split(',').collect();
    assert!(
        fields[0].ends_with(image) && fields.last() == Some(&""),
        "{row}"
    );
    fields[1..fields.len() - 1]
        .iter()
        .map(|v| v.parse().unwrap())
        .collect()
}

/// The fixture labels as one `--labels` value.
pub fn labels(model: &str) -> String {
    let l: Vec<String> = serde_json::from_value(model_expected(model)["labels"].clone()).unwrap();
    l.join(",")
}
