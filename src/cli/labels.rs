//! Command line, labels and prompts: shared by the commands that score images against texts
//! (classify, eval, explain).

use super::outputs::Guard;
use super::run::refuse_paths_as_texts;
use crate::prompts::{ClassPrompts, PromptSpec};
use crate::score::Ensemble;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct LabelArgs {
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
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LogitScale {
    Fixed(f32),
    Model,
}

/// The classes and how they are scored.
pub struct Labels {
    pub classes: Vec<ClassPrompts>,
    pub ensemble: Ensemble,
    pub multilabel: bool,
    pub logit_scale: LogitScale,
}

/// Labels from `--labels`/`--labels-file` (or `--prompts`), with templates; the files read
/// go to `guard`.
pub(super) fn labels(a: LabelArgs, inputs_given: bool, guard: &mut Guard) -> Result<Labels> {
    refuse_paths_as_texts(&a.labels, "--labels", inputs_given)?;
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
    Ok(Labels {
        classes,
        ensemble: a.ensemble,
        multilabel: a.multilabel,
        logit_scale,
    })
}
