//! Command line, shared by every command that reads images: which inputs, how they are
//! decoded, and how a run goes through them.

use super::outputs::Guard;
use crate::image::{DecodeOptions, Window};
use crate::inputs::{Filter, InputSpec, Shard};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

/// What to read and how to run through it; shared by the commands that embed images.
#[derive(Debug, Args)]
#[command(next_help_heading = "Inputs")]
pub struct InputArgs {
    /// Image files, directories (searched recursively, sorted) or `-` for paths on stdin.
    #[arg(value_name = "INPUT", help_heading = None::<&str>)]
    pub inputs: Vec<String>,
    /// Also read image paths from FILE, one per line (directories in it are searched too).
    #[arg(long, value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// Paths on stdin and in --files-from are separated by NUL bytes, not lines (find -print0).
    #[arg(short = '0', long)]
    pub null: bool,
    /// Take only files matching GLOB (a glob with `/` matches the path below the directory
    /// given, one without the file name). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip files matching GLOB (same rules as --include). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Take only part K of N (0 <= K < N) of the inputs, split by a stable hash of each path
    /// relative to the directory given, so N machines split a dataset the same way.
    #[arg(long, value_name = "K/N", allow_hyphen_values = true)]
    pub shard: Option<Shard>,
    /// Threads reading and decoding images [default: the number of CPUs].
    #[arg(short, long, value_name = "N", help_heading = "Run", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// Images per forward pass; results are written one batch at a time.
    #[arg(long, default_value_t = 8, help_heading = "Run", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
    #[command(flatten)]
    pub decode: DecodeArgs,
}

/// The option ids of `InputArgs` besides INPUT, for commands that may not take them.
pub const IMAGE_OPTIONS: &[&str] = &[
    "files_from",
    "null",
    "include",
    "exclude",
    "shard",
    "jobs",
    "batch_size",
    "window",
    "frame",
    "max_megapixels",
];

/// How image files are decoded; shared by every command that reads images.
#[derive(Debug, Args)]
#[command(next_help_heading = "Decoding")]
pub struct DecodeArgs {
    /// How samples of more than 8 bits (DICOM, 12/16-bit PNG/TIFF) become 8: auto (DICOM: the
    /// file's VOI, else min-max), dicom, minmax, percentile:LO,HI, cw:C,W, or none (8-bit data
    /// only). 8-bit images are left as they are unless minmax, percentile or cw is asked for.
    #[arg(long, default_value = "auto", value_name = "WINDOW")]
    pub window: Window,
    /// Which frame of multi-frame DICOMs to use (0-based) [default: 0, with a warning].
    /// Files with fewer frames give an error row.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub frame: Option<u32>,
    /// Refuse images whose header declares more than this many megapixels (before decoding).
    #[arg(
        long,
        default_value_t = 400.0,
        value_name = "MP",
        allow_negative_numbers = true
    )]
    pub max_megapixels: f64,
}

impl DecodeArgs {
    pub fn options(&self) -> Result<DecodeOptions> {
        let mp = self.max_megapixels;
        if !(mp.is_finite() && mp > 0.0) {
            bail!("--max-megapixels must be a positive number, got {mp}");
        }
        Ok(DecodeOptions {
            window: self.window,
            frame: self.frame,
            max_pixels: (mp * 1e6) as u64,
        })
    }
}

/// The images of a run and how to go through them.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub inputs: InputSpec,
    pub batch_size: usize,
    pub jobs: usize,
    pub resume: bool,
    pub decode: DecodeOptions,
}

impl InputArgs {
    pub fn given(&self) -> bool {
        !self.inputs.is_empty() || !self.files_from.is_empty()
    }
}

/// `resume`: continue `-o FILE` (`--resume`, which the commands that take it define).
pub(super) fn run_config(a: InputArgs, resume: bool, guard: &mut Guard) -> Result<RunConfig> {
    // A missing list is a usage error now, before `-o` truncates anything.
    for f in &a.files_from {
        std::fs::File::open(f)
            .with_context(|| format!("cannot open --files-from {}", f.display()))?;
    }
    guard.inputs(&a.inputs, &a.files_from);
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    Ok(RunConfig {
        inputs: InputSpec {
            args: a.inputs,
            files_from: a.files_from,
            filter: Filter::new(&a.include, &a.exclude)?,
            shard: a.shard,
            null: a.null,
        },
        batch_size: a.batch_size as usize,
        jobs: a.jobs.map_or(cpus, |j| j as usize),
        resume,
        decode: a.decode.options()?,
    })
}

/// A label or text that is an image path was meant as an input: `--labels`/`--text` take every
/// value up to the next option, so `--labels a,b chest1.png` makes `chest1.png` a label. Refused
/// when it looks like an image path, or (with no inputs given) names an existing file.
pub(super) fn refuse_paths_as_texts(
    values: &[String],
    flag: &str,
    inputs_given: bool,
) -> Result<()> {
    for v in values {
        let p = std::path::Path::new(v.trim());
        let looks = crate::inputs::has_image_extension(p) && !v.trim().contains(' ');
        let exists = !inputs_given && p.is_file();
        if looks || exists {
            bail!(
                "{flag} value {v:?} is {}: {flag} takes every value up to the next option, so \
                 give the inputs before it (`IMG... {flag} a b`) or write {flag}=VALUE for each",
                if exists {
                    "an existing file, not a text"
                } else {
                    "an image path, not a text"
                }
            );
        }
    }
    Ok(())
}
