//! Command line, `classify`: labels or prompts, the scoring rule, the output.

use super::outputs::{meta_for, output_path, pick_format, Ext, Guard};
use super::run::{refuse_paths_as_texts, run_config, InputArgs, RunConfig};
use crate::prompts::{ClassPrompts, PromptSpec};
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
    /// Candidate labels; a value may hold several, comma-separated. Put it after the inputs.
    #[arg(short, long, num_args = 1.., value_name = "LABEL", help_heading = "Labels and prompts")]
    pub labels: Vec<String>,
    /// File with one label per line (commas kept).
    #[arg(long, value_name = "FILE", help_heading = "Labels and prompts")]
    pub labels_file: Option<PathBuf>,
    /// Prompt template applied to each label, `{}` standing for it (repeatable: an ensemble),
    /// e.g. --template "a chest x-ray showing {}".
    #[arg(long, value_name = "TEXT", help_heading = "Labels and prompts")]
    pub template: Vec<String>,
    /// JSON file of classes and their prompts, instead of --labels:
    /// {"class": ["prompt", ...], ...}, or {"class": {"pos": [...], "neg": [...]}} for --multilabel.
    #[arg(long, value_name = "FILE", help_heading = "Labels and prompts",
          conflicts_with_all = ["labels", "labels_file", "template"])]
    pub prompts: Option<PathBuf>,
    /// How several prompts make one class score.
    #[arg(
        long,
        value_enum,
        default_value = "mean-embedding",
        help_heading = "Labels and prompts"
    )]
    pub ensemble: Ensemble,
    /// Each label is a finding scored on its own: softmax(S * [cos(positive), cos(negative)]),
    /// so rows do not sum to 1 (CheXzero's rule).
    #[arg(long, help_heading = "Labels and prompts")]
    pub multilabel: bool,
    /// Negative prompt template for --multilabel (repeatable) [default: "no {}"].
    #[arg(
        long,
        value_name = "TEXT",
        requires = "multilabel",
        help_heading = "Labels and prompts"
    )]
    pub negative_template: Vec<String>,
    /// Scale S in softmax(S * cos): a number, or `model` for the checkpoint's exp(logit_scale).
    #[arg(
        long,
        default_value = "100",
        value_name = "S",
        allow_hyphen_values = true,
        help_heading = "Labels and prompts"
    )]
    pub logit_scale: String,
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

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LogitScale {
    Fixed(f32),
    Model,
}

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
    refuse_paths_as_texts(&a.labels, "--labels", a.input.given())?;
    if !a.input.given() {
        bail!("classify needs inputs: INPUT... or --files-from FILE");
    }
    let mut labels: Vec<String> = a
        .labels
        .iter()
        .flat_map(|v| v.split(','))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(path) = &a.labels_file {
        guard.read("--labels-file", path);
        let text = crate::read_text(path)
            .map_err(|e| e.context(format!("cannot read --labels-file {}", path.display())))?;
        labels.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
    }
    if let Some(path) = &a.prompts {
        guard.read("--prompts", path);
    }
    let classes = PromptSpec {
        labels,
        templates: a.template,
        prompts_file: a.prompts,
        multilabel: a.multilabel,
        negative_templates: a.negative_template,
    }
    .build()?;
    let logit_scale = match a.logit_scale.as_str() {
        "model" => LogitScale::Model,
        s => match s.parse::<f32>() {
            Ok(v) if v.is_finite() && v > 0.0 => LogitScale::Fixed(v),
            _ => bail!("--logit-scale must be a positive number or `model`, got {s:?}"),
        },
    };
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
        labels: classes.iter().map(|c| c.name.clone()).collect(),
        classes,
        ensemble: a.ensemble,
        multilabel: a.multilabel,
        meta,
        logit_scale,
        format,
        output,
    })
}
