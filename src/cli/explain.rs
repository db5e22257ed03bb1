//! Command line, `explain`: everything classify takes, the method and its settings, and the
//! directory the pictures go to.

use super::labels::{labels, LabelArgs, LogitScale};
use super::outputs::{same_file, Guard};
use super::run::{run_config, InputArgs, RunConfig};
use super::Given;
use crate::explain::maps::Method;
use crate::explain::render::Colormap;
use crate::prompts::ClassPrompts;
use crate::score::Ensemble;
use crate::source::ModelRequest;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodChoice {
    /// Gradient-weighted attention (Chefer et al. 2021), the last --layers blocks.
    Gae,
    /// Grad-CAM on the last block's ln_1 output (pytorch-grad-cam's ViT recipe).
    Gradcam,
    /// Forward passes with windows of patches blanked; the map is the score's drop.
    Occlusion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetChoice {
    /// The label's logit: scale x cosine (multi-label: the positive-vs-negative log-odds).
    Logit,
    /// The label's probability (softmax over the labels; multi-label: positive vs negative).
    Probability,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub label: LabelArgs,
    /// The directory for the overlays, strips, raw maps and index.html (made if missing).
    #[arg(short, long, value_name = "DIR", help_heading = "Output")]
    pub output: PathBuf,
    /// How the maps are made.
    #[arg(long, value_enum, default_value = "gae", help_heading = "Explanation")]
    pub method: MethodChoice,
    /// gae: explain the last N blocks (the notebook's default is the last one).
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "Explanation",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub layers: u32,
    /// occlusion: windows of W x W patches.
    #[arg(long, value_name = "W", default_value_t = 2, help_heading = "Explanation",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub window_patches: u32,
    /// occlusion: a window every S patches [default: W, windows side by side].
    #[arg(long, value_name = "S", help_heading = "Explanation",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub stride: Option<u32>,
    /// What is explained: each label's logit or its probability.
    #[arg(
        long,
        value_enum,
        default_value = "logit",
        help_heading = "Explanation"
    )]
    pub target: TargetChoice,
    /// Colour map of the overlays.
    #[arg(long, value_enum, default_value = "jet", help_heading = "Output")]
    pub colormap: Colormap,
    /// Opacity of the map over the image (0..1).
    #[arg(
        long,
        default_value_t = 0.5,
        value_name = "A",
        allow_negative_numbers = true,
        help_heading = "Output"
    )]
    pub alpha: f32,
    /// Also write each image's raw maps as float32 npy [labels, grid, grid] (`<stem>.raw.npy`).
    #[arg(long, help_heading = "Output")]
    pub raw: bool,
    /// Rows on stdout: jsonl (one object per input).
    #[arg(long, value_enum, default_value = "jsonl", help_heading = "Output")]
    pub format: ExplainFormat,
    /// Write the run's provenance to FILE [default: DIR/explain.meta.json].
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub meta: Option<PathBuf>,
    /// Write no provenance record.
    #[arg(long, help_heading = "Output", conflicts_with = "meta")]
    pub no_meta: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    Jsonl,
}

#[derive(Debug, Clone)]
pub struct ExplainConfig {
    pub run: RunConfig,
    pub labels: Vec<String>,
    pub classes: Vec<ClassPrompts>,
    pub ensemble: Ensemble,
    pub multilabel: bool,
    pub logit_scale: LogitScale,
    pub dir: PathBuf,
    pub method: Method,
    pub target: TargetChoice,
    pub colormap: Colormap,
    pub alpha: f32,
    pub raw: bool,
    pub meta: Option<PathBuf>,
}

pub(super) fn config(a: ExplainArgs, model: &ModelRequest, given: &Given) -> Result<ExplainConfig> {
    let mut guard = Guard::default();
    let l = labels(a.label, a.input.given(), &mut guard)?;
    if !a.input.given() {
        bail!("explain needs inputs: INPUT... or --files-from FILE");
    }
    if !(0.0..=1.0).contains(&a.alpha) {
        bail!("--alpha must be between 0 and 1, got {}", a.alpha);
    }
    let method = match a.method {
        MethodChoice::Gae => Method::Gae {
            layers: a.layers as usize,
        },
        MethodChoice::Gradcam => Method::GradCam,
        MethodChoice::Occlusion => Method::Occlusion {
            window: a.window_patches as usize,
            stride: a.stride.unwrap_or(a.window_patches) as usize,
        },
    };
    if a.method != MethodChoice::Gae {
        given.refuse(&["layers"], "without --method gae")?;
    }
    if a.method != MethodChoice::Occlusion {
        given.refuse(&["window_patches", "stride"], "without --method occlusion")?;
    }
    if a.output.is_file() {
        bail!(
            "-o {}: a file; explain writes a directory of pictures",
            a.output.display()
        );
    }
    // The pictures are PNGs: inside an input directory they would be read as inputs.
    for arg in a
        .input
        .inputs
        .iter()
        .filter(|x| std::path::Path::new(x).is_dir())
    {
        let (dir, input) = (
            resolve_dir(&a.output),
            resolve_dir(std::path::Path::new(arg)),
        );
        if dir.starts_with(&input) || same_file(&a.output, std::path::Path::new(arg)) {
            bail!(
                "-o {} is inside the input directory {arg}, where its pictures would be read as images",
                a.output.display()
            );
        }
    }
    let meta = match (a.meta, a.no_meta) {
        (_, true) => None,
        (Some(m), false) => Some(m),
        (None, false) => Some(a.output.join("explain.meta.json")),
    };
    guard
        .write("the rows", None)
        .write_opt("--meta", meta.as_deref().filter(|_| a.output.is_dir()));
    let run = run_config(a.input, false, &mut guard)?;
    guard.model(model).check()?;
    Ok(ExplainConfig {
        run,
        labels: l.classes.iter().map(|c| c.name.clone()).collect(),
        classes: l.classes,
        ensemble: l.ensemble,
        multilabel: l.multilabel,
        logit_scale: l.logit_scale,
        dir: a.output,
        method,
        target: a.target,
        colormap: a.colormap,
        alpha: a.alpha,
        raw: a.raw,
        meta,
    })
}

/// A directory's absolute path, resolved as far as it exists.
fn resolve_dir(p: &std::path::Path) -> PathBuf {
    let abs = std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p));
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(n), Some(parent)) => {
                rest.push(n);
                existing = parent.to_path_buf();
            }
            _ => return abs,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    out.extend(rest.into_iter().rev());
    out
}
