//! Command line, `probe fit | predict`: embeddings (read or made now), truth, the probe file.

use super::classify::{classify_format, ClassifyFormat};
use super::embed::{EmbedConfig, EmbedFormat};
use super::outputs::{output_path, sidecar, Guard};
use super::run::{run_config, InputArgs, IMAGE_OPTIONS};
use super::{Given, MODEL_OPTIONS};
use crate::concepts::{Bank, Stats};
use crate::probe::logreg::Penalty;
use crate::source::ModelRequest;
use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// L2-regularised multinomial logistic regression on L2-normalised embeddings, C chosen by
    /// stratified k-fold cross-validation (scikit-learn's LogisticRegressionCV), saved as JSON;
    /// or, with --features concepts, on the concept scores of a bank (a concept bottleneck).
    Fit(ProbeFitArgs),
    /// Class probabilities from a saved probe, as classify writes them (eval reads them).
    Predict(ProbePredictArgs),
    /// The concepts a concept probe weighs most, for and against each class.
    Explain(ProbeExplainArgs),
}

/// What a probe reads of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FeatureKind {
    /// The L2-normalised image embedding.
    Embedding,
    /// The cosine with each concept of --bank, z-scored per concept.
    Concepts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PenaltyChoice {
    L2,
    /// Sparse weights: a short, readable list of what matters.
    L1,
}

#[derive(Debug, Args)]
pub struct ProbeFitArgs {
    /// Training labels: a CSV `file,label` (names as in the embeddings, or path suffixes).
    #[arg(long, value_name = "FILE", help_heading = "Probe")]
    pub truth: PathBuf,
    /// The labels are in this column of --truth, whatever other columns it has.
    #[arg(long, value_name = "NAME", help_heading = "Probe")]
    pub label_column: Option<String>,
    /// Embeddings from `whyxray embed -o FILE` (npy or jsonl, with FILE.meta.json naming the
    /// model). Without it, INPUT... are embedded now.
    #[arg(long, value_name = "FILE", help_heading = "Probe")]
    pub embeddings: Option<PathBuf>,
    /// Where to save the probe (JSON: weights, classes, C, model id and revision; `-` for
    /// stdout).
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: PathBuf,
    /// Use this C (inverse regularisation strength) instead of cross-validating.
    #[arg(long, value_name = "C", allow_negative_numbers = true, help_heading = "Probe",
          conflicts_with_all = ["cs", "folds"])]
    pub c: Option<f64>,
    /// Candidate Cs for cross-validation [default: 10 values from 1e-4 to 1e4, log-spaced].
    #[arg(
        long,
        value_name = "C,...",
        value_delimiter = ',',
        allow_negative_numbers = true,
        help_heading = "Probe"
    )]
    pub cs: Vec<f64>,
    /// Cross-validation folds (stratified, unshuffled).
    #[arg(long, default_value_t = 5, help_heading = "Probe",
          value_parser = clap::value_parser!(u32).range(2..=100))]
    pub folds: u32,
    /// Solver tolerance on the largest gradient component of the (mean) objective.
    #[arg(
        long,
        default_value_t = 1e-8,
        allow_negative_numbers = true,
        help_heading = "Probe"
    )]
    pub tol: f64,
    /// The penalty on the weights: l2, or l1 for a sparse model.
    #[arg(long, value_enum, default_value = "l2", help_heading = "Probe")]
    pub penalty: PenaltyChoice,
    /// What the probe reads: the image embedding, or its concept scores (needs --bank).
    #[arg(
        long,
        value_enum,
        default_value = "embedding",
        help_heading = "Concepts"
    )]
    pub features: FeatureKind,
    /// The concept bank (as `whyxray concepts --bank`).
    #[arg(long, value_name = "FILE", help_heading = "Concepts")]
    pub bank: Option<PathBuf>,
    /// Prompt template for each concept (repeatable), as `whyxray concepts --template`.
    #[arg(long, value_name = "TEXT", help_heading = "Concepts")]
    pub template: Vec<String>,
    /// Standardise the concept scores against these statistics (`concepts --write-stats`)
    /// [default: the training images' own].
    #[arg(long, value_name = "FILE", help_heading = "Concepts")]
    pub reference_stats: Option<PathBuf>,
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct ProbeExplainArgs {
    /// A concept probe saved by `probe fit --features concepts`.
    #[arg(value_name = "PROBE")]
    pub probe: PathBuf,
    /// How many concepts to list for and against each class.
    #[arg(long, default_value_t = 10, value_name = "K",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub top: u64,
    /// KnoBo's `concept_priors/xray_class2concept2answer.json`: per class, how many learned
    /// weights agree in sign with the textbook's yes/no.
    #[arg(long, value_name = "FILE")]
    pub prior: Option<PathBuf>,
    /// Also write the explanation as JSON to FILE; `-` prints it to stdout instead of the table.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProbePredictArgs {
    /// A probe saved by `probe fit`.
    #[arg(long, value_name = "FILE", help_heading = "Probe")]
    pub probe: PathBuf,
    /// Embeddings from `whyxray embed -o FILE`; without it, INPUT... are embedded now.
    #[arg(long, value_name = "FILE", help_heading = "Probe")]
    pub embeddings: Option<PathBuf>,
    /// Output format [default: from -o's extension, else table on a terminal, else csv].
    #[arg(long, value_enum, help_heading = "Output")]
    pub format: Option<ClassifyFormat>,
    /// Write results to FILE instead of stdout (`-` for stdout).
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// A concept probe: each jsonl row names the K concepts that pushed most toward the
    /// predicted class (weight x z-score) [default: 5].
    #[arg(long, value_name = "K", help_heading = "Output",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub top: Option<u64>,
    #[command(flatten)]
    pub input: InputArgs,
}

/// Where a probe command's embeddings come from: a file, or an embed run made first.
#[derive(Debug, Clone)]
pub struct EmbeddingSource {
    pub path: PathBuf,
    /// Embed INPUT... into `path` (a temporary npy) before reading it.
    pub embed: Option<Box<EmbedConfig>>,
}

/// `--features concepts`: the bank, its templates and the statistics to standardise against.
#[derive(Debug, Clone)]
pub struct ConceptSpec {
    pub bank: Bank,
    pub templates: Vec<String>,
    pub reference_stats: Option<(PathBuf, Stats)>,
}

#[derive(Debug, Clone)]
pub struct ProbeFitConfig {
    pub truth: PathBuf,
    pub label_column: Option<String>,
    pub source: EmbeddingSource,
    pub penalty: Penalty,
    pub concepts: Option<ConceptSpec>,
    /// `None`: stdout.
    pub output: Option<PathBuf>,
    pub c: Option<f64>,
    pub cs: Vec<f64>,
    pub folds: usize,
    pub tol: f64,
}

#[derive(Debug, Clone)]
pub struct ProbePredictConfig {
    pub probe: PathBuf,
    pub source: EmbeddingSource,
    pub format: ClassifyFormat,
    /// `None`: stdout.
    pub output: Option<PathBuf>,
    /// `--top K` was given (a concept probe's reasons; 5 when not).
    pub top: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ProbeExplainConfig {
    pub probe: PathBuf,
    pub top: usize,
    pub prior: Option<PathBuf>,
    pub json: Option<PathBuf>,
}

/// `--embeddings FILE` (with its sidecars) or INPUT... embedded now into a private temporary
/// npy; the guard learns what is read. The temporary directory is made last, by `finish`.
fn embedding_source(
    file: Option<PathBuf>,
    input: InputArgs,
    guard: &mut Guard,
    given: &Given,
    needs_model: bool,
) -> Result<(Option<PathBuf>, Option<EmbedConfig>)> {
    match (file, input.given()) {
        (Some(_), true) => bail!("give --embeddings FILE or INPUT... to embed now, not both"),
        (None, false) => bail!("needs --embeddings FILE (from `whyxray embed -o`) or INPUT..."),
        (Some(path), false) => {
            if !path.is_file() {
                bail!("--embeddings {}: no such file", path.display());
            }
            let why = "with --embeddings: the images were embedded already";
            given.refuse(IMAGE_OPTIONS, why)?;
            if !needs_model {
                given.refuse(MODEL_OPTIONS, why)?;
            }
            guard.read("--embeddings", &path);
            for s in [".meta.json", ".paths.tsv"] {
                guard.read("the embeddings' sidecar", &sidecar(&path, s));
            }
            guard.read("the embeddings' sidecar", &path.with_extension("paths.tsv"));
            Ok((Some(path), None))
        }
        (None, true) => {
            let embed = EmbedConfig {
                run: run_config(input, false, guard)?,
                meta: None,
                texts: Vec::new(),
                format: EmbedFormat::Npy,
                output: None,
            };
            Ok((None, Some(embed)))
        }
    }
}

/// After every check: the source, with the temporary npy an on-the-spot embed run writes.
fn finish(file: Option<PathBuf>, embed: Option<EmbedConfig>) -> Result<EmbeddingSource> {
    match (file, embed) {
        (Some(path), _) => Ok(EmbeddingSource { path, embed: None }),
        (None, Some(mut e)) => {
            let path = crate::private_temp_dir("probe")?.join("embeddings.npy");
            e.output = Some(path.clone());
            e.meta = Some(sidecar(&path, ".meta.json"));
            Ok(EmbeddingSource {
                path,
                embed: Some(Box::new(e)),
            })
        }
        (None, None) => bail!("needs --embeddings FILE or INPUT..."),
    }
}

fn check_truth(truth: &Path, guard: &mut Guard) -> Result<()> {
    if !truth.is_file() {
        bail!("--truth {}: no such file", truth.display());
    }
    guard.read("--truth", truth);
    Ok(())
}

pub(super) fn fit_config(
    a: ProbeFitArgs,
    model: &mut ModelRequest,
    given: &Given,
) -> Result<ProbeFitConfig> {
    if let Some(c) = a.c.filter(|c| !(c.is_finite() && *c > 0.0)) {
        bail!("--c must be a positive number, got {c}");
    }
    if a.cs.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
        bail!("--cs must be positive numbers");
    }
    if !(a.tol.is_finite() && a.tol > 0.0) {
        bail!("--tol must be a positive number");
    }
    let mut guard = Guard::default();
    check_truth(&a.truth, &mut guard)?;
    let concepts = concept_spec(&a, &mut guard)?;
    let (file, embed) =
        embedding_source(a.embeddings, a.input, &mut guard, given, concepts.is_some())?;
    // The concepts' text is embedded by the model that made the embeddings, unless -m says.
    if let (Some(f), Some(_)) = (&file, &concepts) {
        if !given.has("model") && !given.has("revision") {
            *model = super::search::recorded_model(f, model)?;
        }
    }
    let output = output_path(Some(a.output));
    guard.write("-o", output.as_deref()).model(model).check()?;
    Ok(ProbeFitConfig {
        truth: a.truth,
        label_column: a.label_column,
        penalty: match a.penalty {
            PenaltyChoice::L2 => Penalty::L2,
            PenaltyChoice::L1 => Penalty::L1,
        },
        concepts,
        source: finish(file, embed)?,
        output,
        c: a.c,
        cs: a.cs,
        folds: a.folds as usize,
        tol: a.tol,
    })
}

pub(super) fn predict_config(
    a: ProbePredictArgs,
    model: &ModelRequest,
    given: &Given,
) -> Result<ProbePredictConfig> {
    if !a.probe.is_file() {
        bail!("--probe {}: no such file", a.probe.display());
    }
    let mut guard = Guard::default();
    guard.read("--probe", &a.probe);
    let (file, embed) = embedding_source(a.embeddings, a.input, &mut guard, given, false)?;
    let output = output_path(a.output);
    let format = classify_format(a.format, output.as_deref())?;
    guard.write("-o", output.as_deref()).model(model).check()?;
    Ok(ProbePredictConfig {
        probe: a.probe,
        source: finish(file, embed)?,
        format,
        output,
        top: a.top.map(|k| k as usize),
    })
}

pub(super) fn explain_config(a: ProbeExplainArgs) -> Result<ProbeExplainConfig> {
    if !a.probe.is_file() {
        bail!("{}: no such file", a.probe.display());
    }
    let mut guard = Guard::default();
    guard.read("PROBE", &a.probe).write("the explanation", None);
    if let Some(p) = &a.prior {
        guard.read("--prior", p);
    }
    if let Some(j) = a.json.as_deref().filter(|j| j.as_os_str() != "-") {
        guard.write("--json", Some(j));
    }
    guard.check()?;
    Ok(ProbeExplainConfig {
        probe: a.probe,
        top: a.top as usize,
        prior: a.prior,
        json: a.json,
    })
}

/// `--features concepts` with its bank (and nothing concept-like without it).
fn concept_spec(a: &ProbeFitArgs, guard: &mut Guard) -> Result<Option<ConceptSpec>> {
    if a.features == FeatureKind::Embedding {
        if a.bank.is_some() || !a.template.is_empty() || a.reference_stats.is_some() {
            bail!("--bank, --template and --reference-stats need --features concepts");
        }
        return Ok(None);
    }
    let Some(path) = &a.bank else {
        bail!("--features concepts needs --bank FILE");
    };
    for t in &a.template {
        if !t.contains("{}") {
            bail!("template {t:?} has no {{}} for the concept");
        }
    }
    guard.read("--bank", path);
    let (bank, _) = Bank::read(path)?;
    let reference_stats = match &a.reference_stats {
        Some(p) => {
            guard.read("--reference-stats", p);
            Some((p.clone(), Stats::read(p)?))
        }
        None => None,
    };
    Ok(Some(ConceptSpec {
        bank,
        templates: a.template.clone(),
        reference_stats,
    }))
}
