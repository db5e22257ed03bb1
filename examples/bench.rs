//! Benchmark helpers for `bench/pipeline.sh` (not a test): the pieces of a run timed alone.
//!
//!   bench decode FILE_LIST JOBS          decode + preprocess only, images/s on JOBS threads
//!   bench tower MODEL_DIR IMAGES BATCH   the image tower alone on random pixels, images/s
//!   bench text MODEL_DIR                 the text tower alone on 16 typical labels, texts/s
//!   bench load MODEL_DIR FILE            seconds to load the weights FILE (best of 2)
//!   bench make-vit-l14 DIR [SEED]        a random full-size ViT-L/14 open_clip checkpoint
//!   bench make-index FILE ROWS DIM SEED [COPIES]
//!                                        a random L2-normalised embedding index as `embed`
//!                                        writes it (npy + sidecars), COPIES rows planted
//!                                        as near copies of others (for `duplicates`)
//!   bench gemm M N K                     gemm's float32 GFLOP/s on all cores (the ceiling)
//!   bench faithfulness MODEL_DIR STEPS IMAGE...
//!                                        deletion and insertion areas of gae, gradcam and
//!                                        occlusion (2x2) maps against a random order,
//!                                        averaged over the images x 2 labels
//!
//! `tower` and `text` run where `WHYXRAY_BENCH_DEVICE` says (cpu, default, or cuda) in
//! `WHYXRAY_BENCH_DTYPE` (f32, default, f16 or bf16); on a GPU each timed pass ends with a
//! device synchronisation, and the figure printed is the median of 10 passes.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

fn bench_device() -> Result<(Device, DType)> {
    let dev = match std::env::var("WHYXRAY_BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0)?,
        _ => Device::Cpu,
    };
    let dtype = match std::env::var("WHYXRAY_BENCH_DTYPE").as_deref() {
        Ok("bf16") => DType::BF16,
        Ok("f16") => DType::F16,
        _ => DType::F32,
    };
    Ok((dev, dtype))
}

/// Seconds per pass: the median of `passes` timed runs of `f`, each synchronised.
fn median_secs(dev: &Device, passes: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut times = Vec::with_capacity(passes);
    for _ in 0..passes {
        let start = Instant::now();
        f()?;
        dev.synchronize()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use whyxray::image::{decode_file, preprocess};
use whyxray::model::config::OpenClipConfig;
use whyxray::model::weights::expected_shapes;
use whyxray::model::Clip;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    whyxray::runtime_defaults();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["decode", list, jobs] => decode(Path::new(list), jobs.parse()?),
        ["tower", dir, n, batch] => tower(Path::new(dir), n.parse()?, batch.parse()?),
        ["text", dir] => text(Path::new(dir)),
        ["load", dir, file] => load(Path::new(dir), file),
        ["make-vit-l14", dir] => make_vit_l14(Path::new(dir), 0),
        ["make-vit-l14", dir, seed] => make_vit_l14(Path::new(dir), seed.parse()?),
        ["make-index", file, rows, dim, seed] => {
            make_index(Path::new(file), rows.parse()?, dim.parse()?, seed.parse()?, 0)
        }
        ["make-index", file, rows, dim, seed, copies] => make_index(
            Path::new(file),
            rows.parse()?,
            dim.parse()?,
            seed.parse()?,
            copies.parse()?,
        ),
        ["gemm", m, n, k] => gemm_ceiling(m.parse()?, n.parse()?, k.parse()?),
        ["faithfulness", dir, steps, images @ ..] if !images.is_empty() => {
            faithfulness(Path::new(dir), steps.parse()?, images)
        }
        _ => bail!("usage: bench decode LIST JOBS | tower DIR N BATCH | text DIR | load DIR FILE | make-vit-l14 DIR [SEED] | make-index FILE ROWS DIM SEED [COPIES] | gemm M N K | faithfulness DIR STEPS IMAGE..."),
    }
}

fn decode(list: &Path, jobs: usize) -> Result<()> {
    let files: Vec<PathBuf> = std::fs::read_to_string(list)?
        .lines()
        .map(PathBuf::from)
        .collect();
    let cfg = OpenClipConfig::from_json(VIT_L_14_CONFIG)?.preprocess;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build()?;
    let start = Instant::now();
    let ok = pool.install(|| {
        files
            .par_iter()
            .filter(|f| decode_file(f).map(|d| preprocess(&d, &cfg)).is_ok())
            .count()
    });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "decode+preprocess: {ok}/{} images in {secs:.2} s = {:.1} images/s",
        files.len(),
        files.len() as f64 / secs
    );
    Ok(())
}

fn load_model(dir: &Path) -> Result<Clip> {
    let cfg = OpenClipConfig::from_file(&dir.join("open_clip_config.json"))?;
    let weights = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .context("no weights")?;
    let (dev, dtype) = bench_device()?;
    let tensors = whyxray::model::weights::load(&weights, &cfg.model, &dev)?;
    Clip::from_tensors_in(cfg, tensors, &dev, dtype)
}

const LABELS: [&str; 16] = [
    "enlarged heart",
    "pleural effusion",
    "no finding",
    "pneumothorax",
    "atelectasis",
    "cardiomegaly",
    "consolidation",
    "edema",
    "emphysema",
    "fibrosis",
    "hernia",
    "infiltration",
    "mass",
    "nodule",
    "pleural thickening",
    "pneumonia",
];

/// The text tower on the 16 labels, repeated to `WHYXRAY_BENCH_TEXTS` texts (default 16).
fn text(dir: &Path) -> Result<()> {
    let model = load_model(dir)?;
    let n: usize = std::env::var("WHYXRAY_BENCH_TEXTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let labels: Vec<String> = (0..n).map(|i| LABELS[i % 16].to_string()).collect();
    whyxray::commands::embed_texts(&model, &labels)?; // warm-up
    let secs = median_secs(model.device(), 10, || {
        whyxray::commands::embed_texts(&model, &labels).map(drop)
    })?;
    println!(
        "text tower: {n} labels in {secs:.4} s = {:.1} texts/s",
        n as f64 / secs
    );
    Ok(())
}

fn load(dir: &Path, file: &str) -> Result<()> {
    let cfg = OpenClipConfig::from_file(&dir.join("open_clip_config.json"))?;
    let mut best = f64::MAX;
    for _ in 0..2 {
        let start = Instant::now();
        drop(Clip::load(cfg.clone(), &dir.join(file), &Device::Cpu)?);
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!("load {file}: {best:.2} s");
    Ok(())
}

fn tower(dir: &Path, n: usize, batch: usize) -> Result<()> {
    let model = load_model(dir)?;
    let s = model.config.preprocess.size;
    let pixels = Tensor::randn(0f32, 1.0, (batch, 3, s, s), model.device())?;
    model.encode_images(&pixels)?; // warm-up (and, on a GPU, kernel loading)
    let pass = || -> Result<()> {
        let mut done = 0;
        while done < n {
            let b = batch.min(n - done);
            model.encode_images(&pixels.narrow(0, 0, b)?)?;
            done += b;
        }
        Ok(())
    };
    let passes = if model.device().is_cpu() { 1 } else { 10 };
    let secs = median_secs(model.device(), passes, pass)?;
    println!(
        "image tower: {n} images (batch {batch}) in {secs:.2} s = {:.3} images/s",
        n as f64 / secs
    );
    Ok(())
}

const VIT_L_14_CONFIG: &str = r#"{"model_cfg": {"embed_dim": 768,
  "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
  "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}},
 "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}"#;

/// Normal(0, 0.02) weights, LayerNorms at 1/0, logit_scale ln(100): random but well-scaled.
fn make_vit_l14(dir: &Path, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("open_clip_config.json"), VIT_L_14_CONFIG)?;
    let cfg = OpenClipConfig::from_json(VIT_L_14_CONFIG)?;
    let dev = Device::Cpu;
    let mut rng = SplitMix(seed);
    let mut tensors = HashMap::new();
    for (name, shape) in expected_shapes(&cfg.model) {
        let t = if name == "logit_scale" {
            Tensor::new(100f32.ln(), &dev)?
        } else if name.contains("ln_") && name.ends_with("weight") {
            Tensor::ones(shape, DType::F32, &dev)?
        } else if name.contains("ln_") || name.ends_with("bias") {
            Tensor::zeros(shape, DType::F32, &dev)?
        } else {
            let n: usize = shape.iter().product();
            Tensor::from_vec(
                (0..n).map(|_| 0.02 * rng.normal()).collect::<Vec<f32>>(),
                shape,
                &dev,
            )?
        };
        tensors.insert(name, t);
    }
    candle_core::safetensors::save(&tensors, dir.join("open_clip_model.safetensors"))?;
    println!("wrote {}", dir.display());
    Ok(())
}

/// `rows` random unit vectors of `dim` as `embed -o FILE` leaves them (npy, paths sidecar,
/// meta record), the last `copies` rows near copies (noise 1e-3) of the first ones.
fn make_index(file: &Path, rows: usize, dim: usize, seed: u64, copies: usize) -> Result<()> {
    use std::io::Write;
    let mut rng = SplitMix(seed);
    let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
    out.write_all(&whyxray::output::npy::header(rows as u64, dim))?;
    let mut side = std::io::BufWriter::new(std::fs::File::create(
        whyxray::output::npy::sidecar_path(file),
    )?);
    writeln!(side, "kind\titem\terror")?;
    let mut first: Vec<Vec<f32>> = Vec::new();
    for i in 0..rows {
        let mut v: Vec<f32> = if i + copies >= rows && !first.is_empty() {
            let src = &first[(i + copies - rows) % first.len()];
            src.iter().map(|x| x + 1e-3 * rng.normal()).collect()
        } else {
            (0..dim).map(|_| rng.normal()).collect()
        };
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        if first.len() < copies {
            first.push(v.clone());
        }
        for x in &v {
            out.write_all(&x.to_le_bytes())?;
        }
        writeln!(side, "image\t/bench/img{i:07}.png\t")?;
    }
    let meta = serde_json::json!({ "command": "embed", "model": {
        "id": "bench/random", "revision": null, "embed_dim": dim,
        "identity": { "weights_sha256": "0".repeat(64), "config_sha256": "0".repeat(64) } } });
    std::fs::write(
        whyxray::cli::sidecar(file, ".meta.json"),
        serde_json::to_string_pretty(&meta)?,
    )?;
    out.flush()?;
    side.flush()?;
    println!(
        "wrote {} ({rows} x {dim}, {copies} near copies)",
        file.display()
    );
    Ok(())
}

/// gemm's float32 throughput on an [M, K] x [K, N] product, best of 3, all cores.
fn gemm_ceiling(m: usize, n: usize, k: usize) -> Result<()> {
    let a = vec![1.0f32; m * k];
    let b = vec![1.0f32; k * n];
    let mut c = vec![0.0f32; m * n];
    let threads = rayon::current_num_threads();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        // SAFETY: row-major [m, k], [k, n] and [m, n] buffers of exactly those sizes.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(threads),
            );
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    let gflop = 2.0 * (m * n * k) as f64 / 1e9;
    println!(
        "gemm f32 {m}x{n}x{k} on {threads} threads: {:.0} GFLOP/s (best of 3)",
        gflop / best
    );
    // The bf16 kernels of `--dtype bf16` on this CPU, on the same shape ([N, K] weight packed).
    let w = whyxray::model::bf16::Packed::from_rows(&vec![0.5f32; n * k], n, k);
    for kernel in whyxray::model::bf16::available() {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            std::hint::black_box(whyxray::model::bf16::linear(&a, m, &w, None, &kernel));
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!(
            "gemm bf16 {m}x{n}x{k} on {threads} threads, kernel {}: {:.0} GFLOP/s (best of 3)",
            kernel.name,
            gflop / best
        );
    }
    Ok(())
}

/// A seeded generator, so the same seed gives the same checkpoint everywhere.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Box-Muller: one standard normal sample.
    fn normal(&mut self) -> f32 {
        let (u1, u2) = (self.next_f64().max(f64::MIN_POSITIVE), self.next_f64());
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
}

/// Petsiuk et al.'s deletion and insertion areas of each method's maps and of a seeded random
/// order (the same for every method), averaged over images x labels; lower deletion and higher
/// insertion than random is faithful.
fn faithfulness(dir: &Path, steps: usize, images: &[&str]) -> Result<()> {
    use whyxray::explain::faithfulness::{areas, order_of, random_order};
    use whyxray::explain::maps::{explain, Method, Targets};
    let model = load_model(dir)?;
    let s = model.config.preprocess.size;
    let grid = model.config.model.vision.grid();
    let labels = ["enlarged heart".to_string(), "pleural effusion".to_string()];
    let pos: Vec<Vec<Vec<f32>>> = whyxray::commands::embed_texts(&model, &labels)?
        .into_iter()
        .map(|e| vec![e])
        .collect();
    let targets = Targets::new(
        &pos,
        None,
        whyxray::score::Ensemble::MeanEmbedding,
        100.0,
        false,
    );
    let pixels: Vec<Vec<f32>> = images
        .iter()
        .map(|f| {
            Ok(preprocess(
                &decode_file(Path::new(f))?,
                &model.config.preprocess,
            ))
        })
        .collect::<Result<_>>()?;
    let mut random = (0.0, 0.0);
    for (i, px) in pixels.iter().enumerate() {
        for l in 0..labels.len() {
            let (d, a) = areas(
                &model,
                px,
                &targets,
                l,
                &random_order(grid * grid, (i * 10 + l) as u64),
                steps,
            )?;
            random = (random.0 + d, random.1 + a);
        }
    }
    let n = (pixels.len() * labels.len()) as f64;
    println!(
        "random order: deletion {:.4}, insertion {:.4}",
        random.0 / n,
        random.1 / n
    );
    for (name, method) in [
        ("gae", Method::Gae { layers: 1 }),
        ("gradcam", Method::GradCam),
        (
            "occlusion 2x2",
            Method::Occlusion {
                window: 2,
                stride: 2,
            },
        ),
    ] {
        let (mut del, mut ins) = (0.0, 0.0);
        for px in &pixels {
            let t = Tensor::from_vec(px.clone(), (3, s, s), &Device::Cpu)?;
            let maps: Vec<Vec<f32>> = explain(&model, &t, &targets, method)?
                .flatten_from(1)?
                .to_vec2()?;
            for (l, map) in maps.iter().enumerate() {
                let (d, a) = areas(&model, px, &targets, l, &order_of(map), steps)?;
                (del, ins) = (del + d, ins + a);
            }
        }
        println!("{name}: deletion {:.4}, insertion {:.4}", del / n, ins / n);
    }
    Ok(())
}
