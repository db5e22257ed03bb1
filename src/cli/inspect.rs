//! Command line, `inspect`: decoding options only, no model.

use super::outputs::{output_path, pick_format, Ext, Guard};
use super::DecodeArgs;
use crate::image::DecodeOptions;
use crate::inputs::InputSpec;
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InspectFormat {
    Text,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Image files, directories (searched recursively, sorted) or `-` for paths on stdin.
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<String>,
    /// Paths on stdin are separated by NUL bytes, not lines (find -print0).
    #[arg(short = '0', long, help_heading = "Inputs")]
    pub null: bool,
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// text: one line per file; jsonl: one JSON object per file [default: from -o's
    /// extension, else text].
    #[arg(long, value_enum, help_heading = "Output")]
    pub format: Option<InspectFormat>,
    /// Write to FILE instead of stdout (`-` for stdout).
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct InspectConfig {
    pub inputs: InputSpec,
    pub format: InspectFormat,
    pub decode: DecodeOptions,
    /// `None`: stdout.
    pub output: Option<PathBuf>,
}

pub(super) fn config(a: InspectArgs) -> Result<InspectConfig> {
    let output = output_path(a.output);
    let formats = [(Ext::Jsonl, InspectFormat::Jsonl)];
    let format = pick_format(a.format, output.as_deref(), &formats, || {
        InspectFormat::Text
    })?;
    Guard::default()
        .inputs(&a.inputs, &[])
        .write("-o", output.as_deref())
        .check()?;
    Ok(InspectConfig {
        inputs: InputSpec {
            args: a.inputs,
            null: a.null,
            ..InputSpec::default()
        },
        format,
        decode: a.decode.options()?,
        output,
    })
}
