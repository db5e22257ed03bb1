//! Command line, `concepts`: a concept bank, its templates and statistics, the output.

use super::outputs::{is_stream, meta_for, output_path, pick_format, sidecar, Ext, Guard};
use super::run::{run_config, InputArgs, RunConfig};
use crate::concepts::{Bank, Stats};
use crate::source::ModelRequest;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConceptsFormat {
    /// Each image with its top concepts (a terminal's default).
    Table,
    Csv,
    Tsv,
    Jsonl,
    /// A float32 [images, concepts] matrix (needs -o FILE), with FILE.paths.tsv.
    Npy,
}

#[derive(Debug, Args)]
pub struct ConceptsArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// With -o FILE (csv, tsv, jsonl): keep the rows FILE already holds, append the rest;
    /// refused if FILE was made with other settings.
    #[arg(long, requires = "output", help_heading = "Run")]
    pub resume: bool,
    /// The concept bank: one concept per line (KnoBo's data/bottlenecks/xray_*.txt load as
    /// they are); blank lines and # comments are skipped, repeats kept once.
    #[arg(long, value_name = "FILE", help_heading = "Concepts")]
    pub bank: PathBuf,
    /// Prompt template applied to each concept, `{}` standing for it (repeatable: the
    /// concept's embedding is the normalised mean, as classify's ensembles).
    #[arg(long, value_name = "TEXT", help_heading = "Concepts")]
    pub template: Vec<String>,
    /// Also name the K concepts most present in each image (jsonl `top_concepts`), ranked by
    /// z-score against --reference-stats, else by raw cosine.
    #[arg(long, value_name = "K", help_heading = "Concepts",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub top: Option<u64>,
    /// Per-concept mean and standard deviation of the cosines over a reference set of images
    /// (from `concepts ... --write-stats FILE`): --top ranks by z-score against them.
    #[arg(long, value_name = "FILE", help_heading = "Concepts")]
    pub reference_stats: Option<PathBuf>,
    /// Write the mean and standard deviation of each concept's cosine over this run's images
    /// to FILE (e.g. over the training images), for --reference-stats.
    #[arg(long, value_name = "FILE", help_heading = "Concepts")]
    pub write_stats: Option<PathBuf>,
    /// Output format [default: from -o's extension, else table on a terminal, else csv].
    #[arg(long, value_enum, help_heading = "Output")]
    pub format: Option<ConceptsFormat>,
    /// Write results to FILE instead of stdout (`-` for stdout).
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// Write the run's provenance (model, bank and its hash, templates) to FILE
    /// [default with -o OUT: OUT.meta.json].
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub meta: Option<PathBuf>,
    /// Write no provenance record.
    #[arg(long, help_heading = "Output", conflicts_with_all = ["meta", "resume"])]
    pub no_meta: bool,
}

#[derive(Debug, Clone)]
pub struct ConceptsConfig {
    pub run: RunConfig,
    pub bank: Bank,
    pub bank_path: PathBuf,
    pub templates: Vec<String>,
    pub top: Option<usize>,
    pub reference_stats: Option<(PathBuf, Stats)>,
    pub write_stats: Option<PathBuf>,
    pub format: ConceptsFormat,
    /// `None`: stdout.
    pub output: Option<PathBuf>,
    pub meta: Option<PathBuf>,
    /// Concepts named twice in the bank (kept once), for a warning.
    pub repeated: Vec<String>,
}

pub(super) fn config(a: ConceptsArgs, model: &ModelRequest) -> Result<ConceptsConfig> {
    if !a.input.given() {
        bail!("concepts needs inputs: INPUT... or --files-from FILE");
    }
    for t in &a.template {
        if !t.contains("{}") {
            bail!("template {t:?} has no {{}} for the concept");
        }
    }
    let mut guard = Guard::default();
    guard.read("--bank", &a.bank);
    let (bank, repeated) = Bank::read(&a.bank)?;
    let reference_stats = match a.reference_stats {
        Some(p) => {
            guard.read("--reference-stats", &p);
            let stats = Stats::read(&p)?;
            Some((p, stats))
        }
        None => None,
    };
    let output = output_path(a.output);
    let formats = [
        (Ext::Csv, ConceptsFormat::Csv),
        (Ext::Tsv, ConceptsFormat::Tsv),
        (Ext::Jsonl, ConceptsFormat::Jsonl),
        (Ext::Npy, ConceptsFormat::Npy),
    ];
    let format = pick_format(a.format, output.as_deref(), &formats, || {
        if output.is_none() && std::io::stdout().is_terminal() {
            ConceptsFormat::Table
        } else {
            ConceptsFormat::Csv
        }
    })?;
    match (format, &output) {
        (ConceptsFormat::Npy, None) => bail!("--format npy needs -o FILE"),
        (ConceptsFormat::Npy, Some(p)) if is_stream(p) => {
            bail!(
                "--format npy needs a file (-o {} is a stream or device)",
                p.display()
            )
        }
        (ConceptsFormat::Npy | ConceptsFormat::Table, _) if a.resume => {
            bail!("--resume works with csv, tsv or jsonl output")
        }
        _ => {}
    }
    if a.resume && output.is_none() {
        bail!("--resume continues an output file: give -o FILE, not stdout");
    }
    let meta = meta_for(a.meta, a.no_meta, output.as_deref())?;
    let paths = output
        .as_deref()
        .filter(|_| format == ConceptsFormat::Npy)
        .map(|o| sidecar(o, ".paths.tsv"));
    guard
        .write("-o", output.as_deref())
        .write_opt("--meta", meta.as_deref())
        .write_opt("the npy's sidecar", paths.as_deref())
        .write_opt("--write-stats", a.write_stats.as_deref());
    let run = run_config(a.input, a.resume, &mut guard)?;
    guard.model(model).check()?;
    Ok(ConceptsConfig {
        run,
        bank,
        bank_path: a.bank,
        templates: a.template,
        top: a.top.map(|k| k as usize),
        reference_stats,
        write_stats: a.write_stats,
        format,
        output,
        meta,
        repeated,
    })
}
