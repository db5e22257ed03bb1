//! Commands: each subcommand wires inputs -> pipeline (decode, preprocess) -> model -> score ->
//! output. Shared here: loading the model, the batch loop with its progress bar and Ctrl-C
//! handling, and turning texts into embeddings.

mod classify;
mod embed;
mod eval;
mod inspect;
mod probe;

use crate::cli::{Config, DeviceChoice, DtypeChoice, RunConfig, Task};
use crate::inputs::{discover, Found, Input};
use crate::model::{config::OpenClipConfig, weights, Clip};
use crate::pipeline::{self, Settings};
use crate::printer::Printer;
use crate::score::normalised_rows;
use crate::source::{convert, resolve, ModelFiles};
use crate::Outcome;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn run(config: Config) -> Result<Outcome> {
    let printer = Printer::new(config.quiet, config.verbose);
    // Ctrl-C: finish the batch in hand, write it, stop. A second Ctrl-C stops at once.
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    match &config.task {
        Task::Inspect(c) => return inspect::run(c, &printer),
        Task::Eval(c) if c.run.is_none() => return eval::run(c, &printer),
        Task::ProbeFit(c) if c.source.embed.is_none() => {
            return probe::on_embeddings(&c.source, None, &printer, |e| probe::fit(c, e, &printer));
        }
        Task::ProbePredict(c) if c.source.embed.is_none() => {
            return probe::on_embeddings(&c.source, None, &printer, |e| probe::predict(c, e));
        }
        _ => {}
    }
    let device = select_device(&config.device, &printer)?;
    let (model, files) = load_model(&config, &device, &printer)?;
    match &config.task {
        Task::Classify(c) => classify::run(c, &model, &files, &printer),
        Task::Embed(c) => embed::run(c, &model, &files, &printer),
        Task::Eval(c) => {
            let cc = c.run.as_deref().context("eval without a run")?;
            let scored = classify::run(cc, &model, &files, &printer);
            let result = scored.and_then(|o| {
                if o.interrupted {
                    return Ok(o);
                }
                eval::run(c, &printer)
            });
            if !c.keep_scores {
                if let Some(dir) = c.scores.parent() {
                    let _ = std::fs::remove_dir_all(dir); // the private temporary directory
                }
            }
            result
        }
        Task::ProbeFit(c) => {
            probe::on_embeddings(&c.source, Some((&model, &files)), &printer, |e| {
                probe::fit(c, e, &printer)
            })
        }
        Task::ProbePredict(c) => {
            probe::on_embeddings(&c.source, Some((&model, &files)), &printer, |e| {
                probe::predict(c, e)
            })
        }
        Task::Inspect(_) => unreachable!("inspect needs no model"),
    }
}

/// `auto` takes GPU 0 when this build has CUDA and a GPU answers, else the CPU.
fn select_device(choice: &DeviceChoice, printer: &Printer) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto if !candle_core::utils::cuda_is_available() => Ok(Device::Cpu),
        DeviceChoice::Auto => match Device::new_cuda(0) {
            Ok(d) => Ok(d),
            Err(e) => {
                printer.detail(format_args!("no usable GPU ({e}); running on the CPU"));
                Ok(Device::Cpu)
            }
        },
        DeviceChoice::Cuda(_) if !candle_core::utils::cuda_is_available() => bail!(
            "--device cuda: this whyxray was built without CUDA support (CPU only); rebuild \
             with `cargo build --release --features cuda`, or use --device cpu or auto"
        ),
        DeviceChoice::Cuda(n) => Device::new_cuda(*n)
            .with_context(|| format!("--device cuda:{n}: no usable CUDA device {n}")),
    }
}

/// `--dtype`, else bf16 on a GPU and f32 on the CPU. candle's bf16 kernels need compute
/// capability 8.0 (Ampere); on older GPUs the default falls back to f16.
fn select_dtype(choice: Option<DtypeChoice>, device: &Device, printer: &Printer) -> DType {
    match choice {
        Some(DtypeChoice::F32) => DType::F32,
        Some(DtypeChoice::F16) => DType::F16,
        Some(DtypeChoice::Bf16) => DType::BF16,
        None if device.is_cuda() => {
            let bf16_works = Tensor::zeros(1, DType::F32, device)
                .and_then(|t| t.to_dtype(DType::BF16))
                .and_then(|t| t.to_dtype(DType::F32))
                .is_ok();
            if !bf16_works {
                printer.note("this GPU has no bfloat16 kernels: using --dtype f16");
            }
            if bf16_works {
                DType::BF16
            } else {
                DType::F16
            }
        }
        None => DType::F32,
    }
}

pub fn load_model(
    config: &Config,
    device: &Device,
    printer: &Printer,
) -> Result<(Clip, ModelFiles)> {
    let start = Instant::now();
    let files = resolve(&config.model, printer)?;
    printer.detail(format_args!(
        "model {} (commit {}): {}",
        files.id,
        files.commit.as_deref().unwrap_or("local"),
        files.weights.display()
    ));
    let cfg = OpenClipConfig::from_file(&files.config)?;
    let dtype = select_dtype(config.dtype, device, printer);
    let model = Clip::from_tensors_in(
        cfg.clone(),
        read_weights(&files.weights, &cfg, device, printer)?,
        device,
        dtype,
    )?;
    printer.detail(format_args!(
        "model loaded in {:.2} s ({device:?}, {dtype:?})",
        start.elapsed().as_secs_f64()
    ));
    Ok((model, files))
}

/// The checked state dict; a `.bin` is read through its converted safetensors copy when the
/// cache has one, and converted for next time when it does not.
fn read_weights(
    path: &Path,
    cfg: &OpenClipConfig,
    device: &Device,
    printer: &Printer,
) -> Result<HashMap<String, Tensor>> {
    let is_bin = path.extension().is_some_and(|e| e != "safetensors");
    let converted = if is_bin {
        convert::converted_path(path)
    } else {
        None
    };
    if let Some(c) = converted.as_ref().filter(|c| c.is_file()) {
        match weights::load(c, &cfg.model, device) {
            Ok(t) => return Ok(t),
            Err(e) => printer.warn(format_args!(
                "ignoring converted weights {}: {e:#}",
                c.display()
            )),
        }
    }
    let tensors = weights::load(path, &cfg.model, device)?;
    if let Some(c) = converted {
        match convert::save(&tensors, &c) {
            Ok(()) => printer.detail(format_args!(
                "converted {} to {}",
                path.display(),
                c.display()
            )),
            Err(e) => printer.warn(format_args!("could not cache converted weights: {e:#}")),
        }
    }
    Ok(tensors)
}

/// One batch's inputs with a normalised image embedding, or the error, for each.
pub type Embedded = Vec<(Input, Result<Vec<f32>, String>)>;

/// Streams the run's images through the pipeline and the image tower, handing each batch to
/// `write` in input order; failures are named on stderr. Stops early on Ctrl-C, after writing.
pub fn for_each_batch(
    model: &Clip,
    run: &RunConfig,
    skip: HashSet<String>,
    printer: &Printer,
    mut write: impl FnMut(Embedded) -> Result<()>,
) -> Result<Outcome> {
    let skip = Arc::new(skip);
    let mut progress = printer.progress("images");
    if printer.shows_progress() {
        count_in_background(run, skip.clone(), progress.total_handle());
    }
    let settings = Settings {
        batch_size: run.batch_size,
        jobs: run.jobs,
        preprocess: model.config.preprocess.clone(),
        decode: run.decode,
        skip,
    };
    let batches = pipeline::start(discover(&run.inputs, true), settings, printer.clone())?;
    let mut outcome = Outcome::default();
    let mut finished = false;
    for msg in batches {
        let Some(batch) = msg? else {
            finished = true;
            break;
        };
        let embedded = embed_batch(model, batch.pixels, batch.status)?;
        let rows: Embedded = batch.inputs.into_iter().zip(embedded).collect();
        for (input, r) in &rows {
            if let Err(e) = r {
                printer.failure(&input.path, e);
            }
        }
        let (n, failed) = (rows.len(), rows.iter().filter(|(_, r)| r.is_err()).count());
        write(rows)?;
        outcome.scored += n - failed;
        outcome.failed += failed;
        progress.add((n - failed) as u64, failed as u64);
        if INTERRUPTED.load(Ordering::SeqCst) {
            outcome.interrupted = true;
            printer.warn("interrupted: stopped after writing the rows done so far");
            break;
        }
    }
    progress.finish();
    if !finished && !outcome.interrupted {
        bail!("the input pipeline stopped unexpectedly; the output holds the rows written so far");
    }
    Ok(outcome)
}

/// The total for the progress bar: the same discovery run again, counting only. Left unknown
/// (a spinner) when an input can only be read once: `-`, or a `--files-from` pipe, which two
/// readers would split between them.
fn count_in_background(
    run: &RunConfig,
    skip: Arc<HashSet<String>>,
    set_total: impl Fn(u64) + Send + 'static,
) {
    let regular = |p: &std::path::PathBuf| std::fs::metadata(p).is_ok_and(|m| m.is_file());
    if run.inputs.args.iter().any(|a| a == "-") || !run.inputs.files_from.iter().all(regular) {
        return;
    }
    let spec = run.inputs.clone();
    let _ = std::thread::Builder::new()
        .name("whyxray-count".into())
        .spawn(move || {
            let total = discover(&spec, false)
                .filter(|f| matches!(f, Ok(Found::Input(i)) if !skip.contains(&i.path)))
                .count();
            set_total(total as u64);
        });
}

/// Runs the image tower once on a batch; a failed input's (zero) slot is computed with the
/// rest and its row discarded, which costs less than copying the good ones together.
fn embed_batch(
    model: &Clip,
    pixels: Vec<f32>,
    status: Vec<Result<(), String>>,
) -> Result<Vec<Result<Vec<f32>, String>>> {
    let s = model.config.preprocess.size;
    let rows = if status.iter().any(Result::is_ok) {
        let batch = Tensor::from_vec(pixels, (status.len(), 3, s, s), model.device())?;
        normalised_rows(&model.encode_images(&batch).context("image tower")?)?
    } else {
        vec![Vec::new(); status.len()]
    };
    Ok(status
        .into_iter()
        .zip(rows)
        .map(|(st, row)| st.map(|()| row))
        .collect())
}

/// Label or prompt texts -> normalised text embeddings, one batch.
pub fn embed_texts(model: &Clip, texts: &[String]) -> Result<Vec<Vec<f32>>> {
    let tokenizer = crate::text::Tokenizer::bundled(model.config.model.text.context_length)?;
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode(t)).collect();
    normalised_rows(&model.encode_texts(&ids).context("text tower")?)
}
