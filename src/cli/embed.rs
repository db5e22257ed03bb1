//! Command line, `embed`: images and/or texts, jsonl or npy.

use super::outputs::{is_stream, meta_for, output_path, pick_format, sidecar, Ext, Guard};
use super::run::{refuse_paths_as_texts, run_config, InputArgs, RunConfig};
use crate::source::ModelRequest;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbedFormat {
    Jsonl,
    Npy,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// With -o FILE (jsonl): keep the images FILE already holds (failed ones are retried),
    /// append the rest; refused if FILE was made with other settings.
    #[arg(long, requires = "output", help_heading = "Run")]
    pub resume: bool,
    /// Texts to embed (each value is one text; commas are kept). Put it after the inputs.
    #[arg(long, num_args = 1.., value_name = "TEXT", help_heading = "Texts")]
    pub text: Vec<String>,
    /// jsonl: one object per item; npy: a float32 [items, dim] array (needs -o FILE) with a
    /// `FILE.paths.tsv` sidecar naming each row [default: from -o's extension, else jsonl].
    #[arg(long, value_enum, help_heading = "Output")]
    pub format: Option<EmbedFormat>,
    /// Write results to FILE instead of stdout (`-` for stdout).
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// Write the run's provenance (version, model and revision, preprocessing) to FILE as
    /// JSON [default with -o OUT: OUT.meta.json]; `probe` reads it to check the model.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub meta: Option<PathBuf>,
    /// Write no provenance record (`probe` then cannot use the output).
    #[arg(long, help_heading = "Output", conflicts_with_all = ["meta", "resume"])]
    pub no_meta: bool,
}

#[derive(Debug, Clone)]
pub struct EmbedConfig {
    pub run: RunConfig,
    pub meta: Option<PathBuf>,
    pub texts: Vec<String>,
    pub format: EmbedFormat,
    /// `None`: stdout.
    pub output: Option<PathBuf>,
}

pub(super) fn config(a: EmbedArgs, model: &ModelRequest) -> Result<EmbedConfig> {
    let mut guard = Guard::default();
    let c = config_with(a, &mut guard)?;
    guard.model(model).check()?;
    Ok(c)
}

pub(super) fn config_with(a: EmbedArgs, guard: &mut Guard) -> Result<EmbedConfig> {
    refuse_paths_as_texts(&a.text, "--text", a.input.given())?;
    if !a.input.given() && a.text.is_empty() {
        bail!("embed needs images (INPUT... or --files-from) and/or texts (--text ...)");
    }
    let output = output_path(a.output);
    let formats = [
        (Ext::Jsonl, EmbedFormat::Jsonl),
        (Ext::Npy, EmbedFormat::Npy),
    ];
    let format = pick_format(a.format, output.as_deref(), &formats, || EmbedFormat::Jsonl)?;
    if format == EmbedFormat::Npy {
        match &output {
            None => bail!("--format npy needs -o FILE: its header is rewritten as rows arrive, which stdout cannot do"),
            Some(p) if is_stream(p) => bail!("--format npy needs a file (-o {} is a stream or device)", p.display()),
            Some(_) if a.resume => bail!("--resume works with jsonl output; rerun an npy export from scratch"),
            Some(_) => {}
        }
    }
    if a.resume && output.is_none() {
        bail!("--resume continues an output file: give -o FILE, not stdout");
    }
    let meta = meta_for(a.meta, a.no_meta, output.as_deref())?;
    let paths = output
        .as_deref()
        .filter(|_| format == EmbedFormat::Npy)
        .map(|o| sidecar(o, ".paths.tsv"));
    guard
        .write("-o", output.as_deref())
        .write_opt("--meta", meta.as_deref())
        .write_opt("the npy's sidecar", paths.as_deref());
    Ok(EmbedConfig {
        run: run_config(a.input, a.resume, guard)?,
        meta,
        texts: a.text,
        format,
        output,
    })
}
