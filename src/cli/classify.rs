//! Command line, `classify`: labels or prompts, the scoring rule, the output.

use super::labels::{labels, LabelArgs, LogitScale};
use super::outputs::{meta_for, output_path, pick_format, Ext, Guard};
use super::run::{run_config, InputArgs, RunConfig};
use crate::prompts::ClassPrompts;
use crate::score::Ensemble;
use crate::source::ModelRequest;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassifyFormat {
    Table,
    Csv,
    Tsv,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// With -o FILE: keep the rows FILE already holds (failed ones are retried), append the
    /// rest; refused if FILE was made with other settings (its meta record tells).
    #[arg(long, requires = "output", help_heading = "Run")]
    pub resume: bool,
    #[command(flatten)]
    pub label: LabelArgs,
    /// Output format [default: from -o's extension (.csv, .tsv, .jsonl), else table on a
    /// terminal, else csv].
    #[arg(long, value_enum, help_heading = "Output")]
    pub format: Option<ClassifyFormat>,
    /// Write results to FILE instead of stdout (`-` for stdout).
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// Write the run's provenance (version, model and revision, prompts, preprocessing) to
    /// FILE as JSON [default with -o OUT: OUT.meta.json; none for stdout or a device].
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub meta: Option<PathBuf>,
    /// Write no provenance record.
    #[arg(long, help_heading = "Output", conflicts_with_all = ["meta", "resume"])]
    pub no_meta: bool,
}

/// Every option of `classify` besides INPUT and --labels/--prompts: what `eval --scores` does
/// not take.
pub const CLASSIFY_OPTIONS: &[&str] = &[
    "resume",
    "labels_file",
    "template",
    "ensemble",
    "multilabel",
    "negative_template",
    "logit_scale",
    "format",
    "output",
    "meta",
    "no_meta",
];

#[derive(Debug, Clone)]
pub struct ClassifyConfig {
    pub run: RunConfig,
    /// The output columns, in order.
    pub labels: Vec<String>,
    pub classes: Vec<ClassPrompts>,
    pub ensemble: Ensemble,
    pub multilabel: bool,
    pub meta: Option<PathBuf>,
    pub logit_scale: LogitScale,
    pub format: ClassifyFormat,
    /// `None`: stdout.
    pub output: Option<PathBuf>,
}

/// `--format`, else `-o`'s extension, else a table on a terminal and csv otherwise.
pub(super) fn classify_format(
    given: Option<ClassifyFormat>,
    output: Option<&std::path::Path>,
) -> Result<ClassifyFormat> {
    let formats = [
        (Ext::Csv, ClassifyFormat::Csv),
        (Ext::Tsv, ClassifyFormat::Tsv),
        (Ext::Jsonl, ClassifyFormat::Jsonl),
    ];
    pick_format(given, output, &formats, || {
        if output.is_none() && std::io::stdout().is_terminal() {
            ClassifyFormat::Table
        } else {
            ClassifyFormat::Csv
        }
    })
}

pub(super) fn config(a: ClassifyArgs, model: &ModelRequest) -> Result<ClassifyConfig> {
    let mut guard = Guard::default();
    let c = config_with(a, &mut guard)?;
    guard.model(model).check()?;
    Ok(c)
}

/// The config, with what it reads and writes added to `guard` (checked by the caller).
pub(super) fn config_with(a: ClassifyArgs, guard: &mut Guard) -> Result<ClassifyConfig> {
    let l = labels(a.label, a.input.given(), guard)?;
    if !a.input.given() {
        bail!("classify needs inputs: INPUT... or --files-from FILE");
    }
    let output = output_path(a.output);
    let format = classify_format(a.format, output.as_deref())?;
    if a.resume && output.is_none() {
        bail!("--resume continues an output file: give -o FILE, not stdout");
    }
    if a.resume && format == ClassifyFormat::Table {
        bail!("--resume needs a csv, tsv or jsonl output (--format)");
    }
    let meta = meta_for(a.meta, a.no_meta, output.as_deref())?;
    guard
        .write("-o", output.as_deref())
        .write_opt("--meta", meta.as_deref());
    Ok(ClassifyConfig {
        run: run_config(a.input, a.resume, guard)?,
        labels: l.classes.iter().map(|c| c.name.clone()).collect(),
        classes: l.classes,
        ensemble: l.ensemble,
        multilabel: l.multilabel,
        meta,
        logit_scale: l.logit_scale,
        format,
        output,
    })
}
