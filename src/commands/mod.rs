//! Commands: each subcommand wires inputs -> image pipeline -> model -> score -> output.
//! Shared here: loading the model and turning a batch of files into normalised embeddings.

mod classify;
mod embed;

use crate::cli::{Config, DeviceChoice, Task};
use crate::image::{decode_file, preprocess};
use crate::model::{config::OpenClipConfig, Clip};
use crate::printer::Printer;
use crate::score::normalised_rows;
use crate::source::{resolve, ModelFiles};
use crate::Outcome;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use std::time::Instant;

pub fn run(config: Config) -> Result<Outcome> {
    let printer = Printer::new(config.quiet, config.verbose);
    let device = select_device(&config.device)?;
    let (model, files) = load_model(&config, &device, &printer)?;
    match &config.task {
        Task::Classify(c) => classify::run(c, &model, &files, &printer),
        Task::Embed(c) => embed::run(c, &model, &printer),
    }
}

fn select_device(choice: &DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Auto | DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda(_) => bail!(
            "--device cuda: this whyxray was built without CUDA support (CPU only); \
             use --device cpu or auto"
        ),
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
    let model = Clip::load(cfg, &files.weights, device)?;
    printer.detail(format_args!(
        "model loaded in {:.2} s",
        start.elapsed().as_secs_f64()
    ));
    Ok((model, files))
}

/// Decodes and preprocesses `files` in parallel, runs the image tower once on those that
/// decoded, and returns one normalised embedding or error message per file, in order.
pub fn embed_images(model: &Clip, files: &[String]) -> Result<Vec<Result<Vec<f32>, String>>> {
    let pp = &model.config.preprocess;
    let pixels: Vec<Result<Vec<f32>, String>> = files
        .par_iter()
        .map(|f| {
            decode_file(std::path::Path::new(f))
                .map(|d| preprocess(&d, pp))
                .map_err(|e| format!("{e:#}"))
        })
        .collect();
    let ok: Vec<&[f32]> = pixels.iter().filter_map(|p| p.as_deref().ok()).collect();
    let mut embeddings = if ok.is_empty() {
        Vec::new()
    } else {
        let s = pp.size;
        let flat: Vec<f32> = ok.concat();
        let batch = Tensor::from_vec(flat, (ok.len(), 3, s, s), model.device())?;
        normalised_rows(&model.encode_images(&batch).context("image tower")?)?
    }
    .into_iter();
    Ok(pixels
        .into_iter()
        .map(|p| p.map(|_| embeddings.next().expect("one embedding per decoded image")))
        .collect())
}

/// Label or prompt texts -> normalised text embeddings, one batch.
pub fn embed_texts(model: &Clip, texts: &[String]) -> Result<Vec<Vec<f32>>> {
    let tokenizer = crate::text::Tokenizer::bundled(model.config.model.text.context_length)?;
    let ids: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode(t)).collect();
    normalised_rows(&model.encode_texts(&ids).context("text tower")?)
}
