//! Command line, `duplicates`: one or two embedding files and a cosine threshold.

use super::classify::{classify_format, ClassifyFormat};
use super::outputs::{output_path, Guard};
use super::search::read_index;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DuplicatesArgs {
    /// The embeddings to audit: `whyxray embed ... -o A.npy` (with its sidecars).
    #[arg(long, value_name = "A.npy", help_heading = "Duplicates")]
    pub index: PathBuf,
    /// Pairs between A and these embeddings instead of within A (train vs test).
    #[arg(long, value_name = "B.npy", help_heading = "Duplicates")]
    pub against: Option<PathBuf>,
    /// Report every pair at or above this cosine.
    #[arg(
        long,
        value_name = "C",
        allow_negative_numbers = true,
        help_heading = "Duplicates"
    )]
    pub min_cos: f64,
    /// Output format [default: from -o's extension, else table on a terminal, else csv].
    #[arg(long, value_enum, help_heading = "Output")]
    pub format: Option<ClassifyFormat>,
    /// Write results to FILE instead of stdout (`-` for stdout).
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DuplicatesConfig {
    pub index: PathBuf,
    pub against: Option<PathBuf>,
    pub min_cos: f64,
    pub format: ClassifyFormat,
    pub output: Option<PathBuf>,
}

pub(super) fn config(a: DuplicatesArgs) -> Result<DuplicatesConfig> {
    if !(-1.0..=1.0).contains(&a.min_cos) {
        bail!(
            "--min-cos must be a cosine between -1 and 1, got {}",
            a.min_cos
        );
    }
    let mut guard = Guard::default();
    read_index(&mut guard, "--index", &a.index)?;
    if let Some(b) = &a.against {
        read_index(&mut guard, "--against", b)?;
    }
    let output = output_path(a.output);
    let format = classify_format(a.format, output.as_deref())?;
    guard.write("-o", output.as_deref()).check()?;
    Ok(DuplicatesConfig {
        index: a.index,
        against: a.against,
        min_cos: a.min_cos,
        format,
        output,
    })
}
