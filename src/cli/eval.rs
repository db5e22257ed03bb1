//! Command line, `eval`: ground truth and scores, read or made now.

use super::classify::{
    config_with, ClassifyArgs, ClassifyConfig, ClassifyFormat, CLASSIFY_OPTIONS,
};
use super::outputs::Guard;
use super::run::IMAGE_OPTIONS;
use super::{Given, MODEL_OPTIONS};
use crate::source::ModelRequest;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Ground truth CSV with a header: `file,label` (single-label) or `file,<finding>,...`
    /// with 0/1 values (multi-label). File names may be paths or path suffixes of the scored ones.
    #[arg(long, value_name = "FILE", help_heading = "Evaluation")]
    pub truth: PathBuf,
    /// Single-label truth from this column of --truth, whatever other columns it has
    /// (e.g. `file,finding,source` with --label-column finding).
    #[arg(long, value_name = "NAME", help_heading = "Evaluation")]
    pub label_column: Option<String>,
    /// Scores from an earlier `classify` (or `probe predict`) run: csv, tsv or jsonl. Without
    /// it, INPUT... are classified now (all classify options apply; -o keeps the scores).
    #[arg(long, value_name = "FILE", help_heading = "Evaluation")]
    pub scores: Option<PathBuf>,
    /// Bootstrap resamples for the 95% intervals (0: none).
    #[arg(
        long,
        default_value_t = 1000,
        value_name = "N",
        help_heading = "Evaluation"
    )]
    pub bootstrap: usize,
    /// Seed of the bootstrap resampling: the same seed gives the same intervals.
    #[arg(long, default_value_t = 0, help_heading = "Evaluation")]
    pub seed: u64,
    /// Also report every metric per group of this column's values (of --truth, or of --groups),
    /// with the worst and best group and the gap between them. Repeatable: one group per
    /// combination of values.
    #[arg(long, value_name = "COLUMN", help_heading = "Evaluation")]
    pub group_by: Vec<String>,
    /// The --group-by columns come from FILE (`file,<column>...`) instead of --truth.
    #[arg(
        long,
        value_name = "FILE",
        requires = "group_by",
        help_heading = "Evaluation"
    )]
    pub groups: Option<PathBuf>,
    /// Also write the report as JSON to FILE; `-` prints it to stdout instead of the table.
    #[arg(long, value_name = "FILE", help_heading = "Evaluation")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub classify: ClassifyArgs,
}

#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub truth: PathBuf,
    pub label_column: Option<String>,
    pub group_by: Vec<String>,
    pub groups: Option<PathBuf>,
    /// Read from this file, or written there by `run` first.
    pub scores: PathBuf,
    /// Score the inputs now (the scores file is then a temporary one unless -o was given).
    pub run: Option<Box<ClassifyConfig>>,
    pub keep_scores: bool,
    pub bootstrap: usize,
    pub seed: u64,
    pub json: Option<PathBuf>,
}

pub(super) fn config(a: EvalArgs, model: &ModelRequest, given: &Given) -> Result<EvalConfig> {
    if a.bootstrap == 0 {
        given.refuse(&["seed"], "with --bootstrap 0 (no resampling)")?;
    }
    let c = a.classify;
    let mut guard = Guard::default();
    guard.read("--truth", &a.truth).write("the report", None);
    if let Some(g) = &a.groups {
        guard.read("--groups", g);
    }
    if let Some(dup) = a
        .group_by
        .iter()
        .enumerate()
        .find(|(i, c)| a.group_by[..*i].contains(c))
    {
        bail!("--group-by {} is given twice", dup.1);
    }
    if let Some(j) = a.json.as_deref().filter(|j| j.as_os_str() != "-") {
        guard.write("--json", Some(j));
    }
    if !a.truth.is_file() {
        bail!("--truth {}: no such file", a.truth.display());
    }
    let (scores, run) = match (a.scores, c.input.given()) {
        (Some(_), true) => bail!("eval takes --scores FILE or INPUT... to score now, not both"),
        (None, false) => {
            bail!("eval needs --scores FILE (an earlier classify output) or INPUT... with --labels")
        }
        (Some(path), false) => {
            if !c.label.labels.is_empty() || c.label.prompts.is_some() {
                bail!("--labels/--prompts score images now; with --scores the classes come from the file");
            }
            let why = "with --scores: the images were scored already";
            given.refuse(CLASSIFY_OPTIONS, why)?;
            given.refuse(IMAGE_OPTIONS, why)?;
            given.refuse(MODEL_OPTIONS, why)?;
            guard.read("--scores", &path);
            (Some(path), None)
        }
        (None, true) => {
            if c.output.as_ref().is_some_and(|o| o.as_os_str() == "-") {
                bail!("eval writes its report to stdout: keep the scores with -o FILE, not -o -");
            }
            let cc = config_with(c, &mut guard)?;
            guard.model(model);
            (cc.output.clone(), Some(cc))
        }
    };
    guard.check()?;
    let keep_scores = scores.is_some();
    let (scores, run) = match (scores, run) {
        (Some(path), run) => (path, run),
        // Scores made now and not kept go to a private temporary file.
        (None, Some(mut cc)) => {
            let tmp = crate::private_temp_dir("eval")?.join("scores.csv");
            cc.output = Some(tmp.clone());
            cc.format = ClassifyFormat::Csv;
            (tmp, Some(cc))
        }
        (None, None) => unreachable!("eval without scores or a run"),
    };
    if run
        .as_ref()
        .is_some_and(|cc| cc.format == ClassifyFormat::Table)
    {
        bail!("eval keeps its scores as csv, tsv or jsonl, not a table (--format)");
    }
    Ok(EvalConfig {
        truth: a.truth,
        label_column: a.label_column,
        group_by: a.group_by,
        groups: a.groups,
        scores,
        run: run.map(Box::new),
        keep_scores,
        bootstrap: a.bootstrap,
        seed: a.seed,
        json: a.json,
    })
}
