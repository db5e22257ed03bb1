//! DICOM decoding against pydicom's own modality, VOI LUT and windowing functions
//! (tests/fixtures/make_dicom_reference.py), with whyxray's deliberate differences, on the real
//! files in ../shared/data/xray/dicom and the synthetic ones in tests/data/dicom, the relations
//! that must hold between them, and `inspect` and damaged files through the executable.

use crate::support::*;
use sha2::{Digest, Sha256};
use whyxray::image::{decode_file, decode_file_with, DecodeOptions, Window};

fn shared(name: &str) -> std::path::PathBuf {
    root().join("../shared/data/xray/dicom").join(name)
}

fn pixels(name: &str) -> (usize, usize, Vec<u8>) {
    let d = decode_file(&shared(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    assert_eq!(d.image.channels, 1, "{name}");
    (d.image.width, d.image.height, d.image.data)
}

#[test]
fn windowed_pixels_equal_the_pydicom_reference() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/expected/dicom.json")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = expected["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 27);
    let mut deliberate = 0;
    for want in cases {
        let name = want["file"].as_str().unwrap();
        if name.contains("jpegls") && !cfg!(feature = "jpeg-ls") {
            let err = decode_file(&root().join(name)).unwrap_err();
            assert!(
                format!("{err:#}").contains("transfer syntax 1.2.840.10008.1.2.4.80"),
                "{err:#}"
            );
            continue;
        }
        let opts = DecodeOptions {
            window: want["window"]
                .as_str()
                .map_or(Window::Auto, |w| w.parse().unwrap()),
            frame: want["frame"].as_u64().map(|f| f as u32),
            ..DecodeOptions::default()
        };
        let d =
            decode_file_with(&root().join(name), &opts).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let (w, h, c) = (d.image.width, d.image.height, d.image.channels);
        assert_eq!(
            shape,
            if c == 1 { vec![h, w] } else { vec![h, w, c] },
            "{name}"
        );
        let data = &d.image.data;
        let mean = data.iter().map(|&v| f64::from(v)).sum::<f64>() / data.len() as f64;
        let (min, max) = (data.iter().min().unwrap(), data.iter().max().unwrap());
        let got = format!("{:x}", Sha256::digest(data));
        assert_eq!(
            got,
            want["sha256"].as_str().unwrap(),
            "{name} {opts:?}: ours min {min} max {max} mean {mean}, reference {want}"
        );
        // Where whyxray deliberately goes further than pydicom (inverting MONOCHROME1,
        // min-max without a window), the result must differ from pydicom's plain values.
        for k in ["sha256_not_inverted", "sha256_no_min_max"] {
            if let Some(plain) = want[k].as_str() {
                assert_ne!(got, plain, "{name}: {k}");
                deliberate += 1;
            }
        }
    }
    // 3 MONOCHROME1 files; 3 without a window (the CT and two synthetic 12-bit files).
    assert_eq!(deliberate, 6);
}

#[test]
fn ct_rescale_is_applied_before_a_hounsfield_window() {
    let opts = DecodeOptions {
        window: "cw:40,400".parse().unwrap(),
        ..DecodeOptions::default()
    };
    let d = decode_file_with(&shared("pydicom_ct_small_rescale.dcm"), &opts).unwrap();
    assert_eq!(d.report.rescale, Some([1.0, -1024.0]));
    // Stored 128..2191 is -896..1167 HU after the intercept.
    assert_eq!(d.report.range_before, [-896.0, 1167.0]);
}

#[test]
fn multi_frame_takes_frame_zero_with_a_note_or_the_frame_asked_for() {
    let path = root().join("tests/data/dicom/synthetic_multiframe_12bit.dcm");
    let d = decode_file(&path).unwrap();
    assert_eq!((d.report.frames, d.report.frame), (3, 0));
    assert!(
        d.report.notes[0].contains("3 frames"),
        "{:?}",
        d.report.notes
    );
    let opts = |f| DecodeOptions {
        frame: Some(f),
        ..DecodeOptions::default()
    };
    let d2 = decode_file_with(&path, &opts(2)).unwrap();
    assert!(d2.report.notes.is_empty());
    assert_ne!(d.image.data, d2.image.data);
    let err = decode_file_with(&path, &opts(3)).unwrap_err();
    assert!(format!("{err:#}").contains("3 frame"), "{err:#}");
}

#[test]
fn a_voi_lut_sequence_is_used_and_reported() {
    let d = decode_file(&root().join("tests/data/dicom/synthetic_voilut_12bit.dcm")).unwrap();
    assert!(d.report.window.contains("VOI LUT"), "{}", d.report.window);
}

#[test]
fn fake_monochrome1_is_the_exact_inverse_of_monochrome2() {
    let (_, _, mono2) = pixels("siim_cr_chest_mono2_jpegbaseline.dcm");
    let (_, _, mono1) = pixels("siim_cr_chest_fake_mono1_jpegbaseline.dcm");
    assert!(mono2.iter().zip(&mono1).all(|(a, b)| *a == 255 - *b));
}

#[test]
fn a_jpeg_stream_decodes_the_same_inside_and_outside_dicom() {
    let (_, _, in_dicom) = pixels("siim_cr_chest_mono2_jpegbaseline.dcm");
    let file =
        decode_file(&root().join("../shared/data/xray/jpeg/siim_chest_1024_gray_nojfif.jpg"))
            .unwrap();
    assert_eq!(in_dicom, file.image.data);
}

#[test]
fn the_monochrome1_cr_uses_its_own_window_and_is_inverted() {
    // RG1: WC 15000 / WW 30000 over stored values 874..26479, MONOCHROME1.
    let (_, _, data) = pixels("nema_rg1_cr_chest_mono1_16bit.dcm");
    let (min, max) = (*data.iter().min().unwrap(), *data.iter().max().unwrap());
    let lin = |x: f64| ((x - 14999.5) / 29999.0 + 0.5) * 255.0;
    assert_eq!(
        max,
        255 - lin(874.0).round() as u8,
        "darkest stored value -> brightest after inversion"
    );
    assert_eq!(min, 255 - lin(26479.0).round() as u8);
}

#[test]
fn jpeg_2000_decodes_close_to_the_uncompressed_original() {
    // The lossy J2K copy of RG1 against RG1 itself: the same picture within the codec's loss.
    let (_, _, raw) = pixels("nema_rg1_cr_chest_mono1_16bit.dcm");
    let (_, _, j2k) = pixels("nema_rg1_cr_chest_mono1_16bit_j2k_lossy.dcm");
    let mean_abs = raw
        .iter()
        .zip(&j2k)
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / raw.len() as f64;
    assert!(mean_abs < 1.0, "mean |diff| {mean_abs}");
}

fn inspect(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = whyxray();
    cmd.current_dir(root()).arg("inspect").args(args);
    let out = run(&mut cmd);
    (out.status.code(), stdout(&out), stderr(&out))
}

#[test]
fn inspect_says_what_was_found_and_done_per_file() {
    let (code, out, err) = inspect(&[
        "--format",
        "jsonl",
        "../shared/data/xray/dicom",
        "tests/data/dicom/synthetic_multiframe_12bit.dcm",
        "tests/data/nih_exif_rot90.jpg",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One row per file the test names: the shared folder's files, whatever they are, and two more.
    let shared = std::fs::read_dir(root().join("../shared/data/xray/dicom"))
        .unwrap()
        .filter(|e| {
            let p = e.as_ref().unwrap().path();
            p.is_file()
                && p.extension().is_some_and(|x| {
                    x.eq_ignore_ascii_case("dcm") || x.eq_ignore_ascii_case("dicom")
                })
        })
        .count();
    assert_eq!(rows.len(), shared + 2, "{out}");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["file"].as_str().unwrap().ends_with(name))
            .unwrap()
    };
    let rg1 = row("nema_rg1_cr_chest_mono1_16bit.dcm");
    assert_eq!(rg1["photometric"], "MONOCHROME1");
    assert_eq!(rg1["bits_stored"], 15);
    assert_eq!(rg1["transfer_syntax"], "1.2.840.10008.1.2.1");
    assert_eq!(rg1["window"], "dicom center 15000 width 30000");
    assert_eq!(rg1["inverted"], true);
    assert_eq!(rg1["range_before"], serde_json::json!([874.0, 26479.0]));
    assert_eq!(rg1["error"], serde_json::Value::Null);
    let ct = row("pydicom_ct_small_rescale.dcm");
    assert_eq!(ct["rescale"], serde_json::json!([1.0, -1024.0]));
    assert_eq!(ct["signed"], true);
    assert_eq!(ct["modality"], "CT");
    let mf = row("synthetic_multiframe_12bit.dcm");
    assert_eq!(mf["frames"], 3);
    assert!(mf["notes"][0].as_str().unwrap().contains("frame 0"));
    assert_eq!(row("nih_exif_rot90.jpg")["orientation"], "Rotate90");

    let (code, out, _) = inspect(&["tests/data/dicom/synthetic_voilut_12bit.dcm"]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("tests/data/dicom/synthetic_voilut_12bit.dcm: DICOM;"),
        "{out}"
    );
    assert!(out.contains("VOI LUT") && out.lines().count() == 1, "{out}");
}

#[test]
fn damaged_dicoms_get_error_rows_and_exit_1_and_frames_are_chosen() {
    let tmp = tempfile::tempdir().unwrap();
    let good = root().join("tests/data/dicom/synthetic_multiframe_12bit.dcm");
    let bytes = std::fs::read(&good).unwrap();
    let files = [
        ("zero.dcm", Vec::new()),
        ("cut.dcm", bytes[..bytes.len() / 2].to_vec()),
        ("huge.dcm", huge_dicom(bytes.clone())),
        ("good.dcm", bytes.clone()),
    ];
    for (name, data) in &files {
        std::fs::write(tmp.path().join(name), data).unwrap();
    }
    let dir = tmp.path().to_str().unwrap();
    let mut cmd = whyxray();
    cmd.args(["classify", dir, "-l", "a,b", "--format", "jsonl", "-m"])
        .arg(model_dir("tiny-gelu-p14"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let error = |name: &str| {
        let r = rows
            .iter()
            .find(|r| r["file"].as_str().unwrap().ends_with(name))
            .unwrap();
        r["error"].as_str().map(String::from)
    };
    assert_eq!(rows.len(), 4);
    assert!(error("zero.dcm").unwrap().contains("empty file"));
    assert!(error("cut.dcm").unwrap().contains("not a readable DICOM"));
    assert!(error("huge.dcm").unwrap().contains("65535 x 65535"));
    assert_eq!(error("good.dcm"), None);
    assert!(
        stderr(&out).contains("good.dcm: multi-frame DICOM (3 frames)"),
        "{}",
        stderr(&out)
    );

    // --frame: picks the frame (no warning); a file without it is an error row.
    let mut cmd = whyxray();
    cmd.args([
        "classify", "--frame", "2", "-l", "a,b", "--format", "csv", "-m",
    ])
    .arg(model_dir("tiny-gelu-p14"))
    .arg(&good)
    .arg(root().join("tests/data/nih_00000001_000.png"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("multi-frame"), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].ends_with(','), "{text}");
    assert!(lines[2].contains("single-frame"), "{text}");
}
