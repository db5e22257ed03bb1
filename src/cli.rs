//! Command line: clap definitions (the contract in shared/CLI.md) parsed once into a validated
//! `Config`; nothing downstream sees raw strings.

use crate::image::{DecodeOptions, Window};
use crate::inputs::{Filter, InputSpec, Shard};
use crate::prompts::{ClassPrompts, PromptSpec};
use crate::score::Ensemble;
use crate::source::ModelRequest;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;

const ABOUT: &str = "Zero-shot chest X-ray classification and embeddings with WhyXrayCLIP \
(open_clip ViT-L/14 fine-tuned on MIMIC-CXR), natively in Rust.\n\n\
RESEARCH TOOL ONLY: not a medical device, not validated for clinical use, not for diagnosis.";

const RESEARCH_ONLY: &str = "Research tool only: not a medical device, not for diagnosis.";

#[derive(Debug, Parser)]
#[command(name = "whyxray", version, about = ABOUT, long_about = None, after_help = RESEARCH_ONLY)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Hugging Face hub repo id or local directory with open_clip_config.json and weights.
    #[arg(
        short = 'm',
        long,
        global = true,
        default_value = "yyupenn/whyxrayclip"
    )]
    pub model: String,
    /// Hub branch, tag or commit sha.
    #[arg(long, global = true, default_value = "main")]
    pub revision: String,
    /// Never touch the network (same as HF_HUB_OFFLINE=1).
    #[arg(long, global = true)]
    pub offline: bool,
    /// Where the model runs: auto (a GPU when built with CUDA and one is present), cpu,
    /// cuda or cuda:N.
    #[arg(long, global = true, default_value = "auto")]
    pub device: String,
    /// Weights and activations: f32, f16 or bf16 [default: bf16 on CUDA, f32 on CPU].
    /// Normalisation, cosines and softmax are float32 whatever it is.
    #[arg(long, global = true, value_enum)]
    pub dtype: Option<DtypeChoice>,
    /// No progress bars or notes on stderr; failures are still named.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More notes on stderr (model files, timings).
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Zero-shot classification: one row of label probabilities per image.
    #[command(after_help = RESEARCH_ONLY)]
    Classify(ClassifyArgs),
    /// L2-normalised image and/or text embeddings (float32).
    #[command(after_help = RESEARCH_ONLY)]
    Embed(EmbedArgs),
    /// Scores against ground truth: accuracy, balanced accuracy, AUROC, confusion matrix, each
    /// with a bootstrap interval; from an earlier run's output (--scores) or scoring INPUTs now.
    #[command(after_help = RESEARCH_ONLY)]
    Eval(EvalArgs),
    /// Linear probe on image embeddings (the paper's protocol): `fit` on labelled images,
    /// `predict` on new ones.
    #[command(subcommand, after_help = RESEARCH_ONLY)]
    Probe(ProbeCommand),
    /// What decoding finds in each file and does to it (format, DICOM attributes, window,
    /// value ranges); no model is loaded.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Ground truth CSV with a header: `file,label` (single-label) or `file,<finding>,...`
    /// with 0/1 values (multi-label). File names may be paths or path suffixes of the scored ones.
    #[arg(long, value_name = "FILE")]
    pub truth: PathBuf,
    /// Scores from an earlier `classify` (or `probe predict`) run: csv, tsv or jsonl. Without
    /// it, INPUT... are classified now (all classify options apply; -o keeps the scores).
    #[arg(long, value_name = "FILE")]
    pub scores: Option<PathBuf>,
    /// Bootstrap resamples for the 95% intervals (0: none).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub bootstrap: usize,
    /// Seed of the bootstrap resampling: the same seed gives the same intervals.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the report as JSON to FILE; `-` prints it to stdout instead of the table.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub classify: ClassifyArgs,
}

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// L2-regularised multinomial logistic regression on L2-normalised embeddings, C chosen by
    /// stratified k-fold cross-validation (scikit-learn's LogisticRegressionCV), saved as JSON.
    Fit(ProbeFitArgs),
    /// Class probabilities from a saved probe, as classify writes them (eval reads them).
    Predict(ProbePredictArgs),
}

#[derive(Debug, Args)]
pub struct ProbeFitArgs {
    /// Training labels: a CSV `file,label` (names as in the embeddings, or path suffixes).
    #[arg(long, value_name = "FILE")]
    pub truth: PathBuf,
    /// Embeddings from `whyxray embed -o FILE` (npy or jsonl, with FILE.meta.json naming the
    /// model). Without it, INPUT... are embedded now.
    #[arg(long, value_name = "FILE")]
    pub embeddings: Option<PathBuf>,
    /// Where to save the probe (JSON: weights, classes, C, model id and revision).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Use this C (inverse regularisation strength) instead of cross-validating.
    #[arg(long, value_name = "C")]
    pub c: Option<f64>,
    /// Candidate Cs for cross-validation [default: 10 values from 1e-4 to 1e4, log-spaced].
    #[arg(long, value_name = "C,...", value_delimiter = ',')]
    pub cs: Vec<f64>,
    /// Cross-validation folds (stratified, unshuffled).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub folds: u32,
    /// Solver tolerance on the largest gradient component of the (mean) objective.
    #[arg(long, default_value_t = 1e-8)]
    pub tol: f64,
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct ProbePredictArgs {
    /// A probe saved by `probe fit`.
    #[arg(long, value_name = "FILE")]
    pub probe: PathBuf,
    /// Embeddings from `whyxray embed -o FILE`; without it, INPUT... are embedded now.
    #[arg(long, value_name = "FILE")]
    pub embeddings: Option<PathBuf>,
    /// Output format [default: table on a terminal, else csv].
    #[arg(long, value_enum)]
    pub format: Option<ClassifyFormat>,
    /// Write results to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub input: InputArgs,
}

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
    /// text: one line per file; jsonl: one JSON object per file.
    #[arg(long, value_enum, default_value = "text")]
    pub format: InspectFormat,
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassifyFormat {
    Table,
    Csv,
    Tsv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbedFormat {
    Jsonl,
    Npy,
}

/// What to score and how to run through it; shared by `classify` and `embed`.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Image files, directories (searched recursively, sorted) or `-` for paths on stdin.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Also score the paths listed in FILE, one per line (directories are searched too).
    #[arg(long, value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// Score only files matching GLOB (a glob with `/` matches the path below the directory
    /// given, one without the file name). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip files matching GLOB (same rules as --include). Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Score only part K of N (0 <= K < N) of the inputs, split by a stable hash of each path
    /// relative to the directory given, so N machines split a dataset the same way.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Threads reading and decoding images [default: the number of CPUs].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: Option<u32>,
    /// Images per forward pass; results are written one batch at a time.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// With -o FILE: keep the rows FILE already holds (failed ones are retried), append the rest.
    #[arg(long, requires = "output")]
    pub resume: bool,
}

/// How image files are decoded; shared by every command that reads images.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// How samples of more than 8 bits (DICOM, 12/16-bit PNG/TIFF) become 8: auto (DICOM: the
    /// file's VOI, else min-max), dicom, minmax, percentile:LO,HI, cw:C,W, or none (8-bit data
    /// only). 8-bit images are left as they are unless minmax, percentile or cw is asked for.
    #[arg(long, default_value = "auto", value_name = "WINDOW")]
    pub window: Window,
    /// Which frame of multi-frame DICOMs to use (0-based) [default: 0, with a warning].
    /// Files with fewer frames give an error row.
    #[arg(long, value_name = "N")]
    pub frame: Option<u32>,
    /// Refuse images whose header declares more than this many megapixels (before decoding).
    #[arg(long, default_value_t = 400.0, value_name = "MP")]
    pub max_megapixels: f64,
}

impl DecodeArgs {
    fn options(&self) -> Result<DecodeOptions> {
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

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Candidate labels; a value may hold several, comma-separated. Put it after the inputs.
    #[arg(short, long, num_args = 1.., value_name = "LABEL")]
    pub labels: Vec<String>,
    /// File with one label per line (commas kept).
    #[arg(long, value_name = "FILE")]
    pub labels_file: Option<PathBuf>,
    /// Prompt template applied to each label, `{}` standing for it (repeatable: an ensemble),
    /// e.g. --template "a chest x-ray showing {}".
    #[arg(long, value_name = "TEXT")]
    pub template: Vec<String>,
    /// JSON file of classes and their prompts, instead of --labels:
    /// {"class": ["prompt", ...], ...}, or {"class": {"pos": [...], "neg": [...]}} for --multilabel.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["labels", "labels_file", "template"])]
    pub prompts: Option<PathBuf>,
    /// How several prompts make one class score.
    #[arg(long, value_enum, default_value = "mean-embedding")]
    pub ensemble: Ensemble,
    /// Each label is a finding scored on its own: softmax(S * [cos(positive), cos(negative)]),
    /// so rows do not sum to 1 (CheXzero's rule).
    #[arg(long)]
    pub multilabel: bool,
    /// Negative prompt template for --multilabel (repeatable) [default: "no {}"].
    #[arg(long, value_name = "TEXT", requires = "multilabel")]
    pub negative_template: Vec<String>,
    /// Write the run's provenance (version, model and revision, prompts, preprocessing) to
    /// FILE as JSON [default with -o OUT: OUT.meta.json].
    #[arg(long, value_name = "FILE")]
    pub meta: Option<PathBuf>,
    /// Scale S in softmax(S * cos): a number, or `model` for the checkpoint's exp(logit_scale).
    #[arg(long, default_value = "100", value_name = "S")]
    pub logit_scale: String,
    /// Output format [default: table on a terminal, else csv].
    #[arg(long, value_enum)]
    pub format: Option<ClassifyFormat>,
    /// Write results to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Texts to embed (each value is one text; commas are kept).
    #[arg(long, num_args = 1.., value_name = "TEXT")]
    pub text: Vec<String>,
    /// jsonl: one object per item; npy: a float32 [items, dim] array (needs -o FILE) with a
    /// `<FILE stem>.paths.tsv` sidecar naming each row.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: EmbedFormat,
    /// Write the run's provenance (version, model and revision, preprocessing) to FILE as
    /// JSON [default with -o OUT: OUT.meta.json]; `probe` reads it to check the model.
    #[arg(long, value_name = "FILE")]
    pub meta: Option<PathBuf>,
    /// Write results to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LogitScale {
    Fixed(f32),
    Model,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeChoice {
    F32,
    F16,
    Bf16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub model: ModelRequest,
    pub device: DeviceChoice,
    pub dtype: Option<DtypeChoice>,
    pub quiet: bool,
    pub verbose: bool,
    pub task: Task,
}

#[derive(Debug, Clone)]
pub enum Task {
    Classify(ClassifyConfig),
    Embed(EmbedConfig),
    Inspect(InspectConfig),
    Eval(EvalConfig),
    ProbeFit(ProbeFitConfig),
    ProbePredict(ProbePredictConfig),
}

/// Where a probe command's embeddings come from: a file, or an embed run made first.
#[derive(Debug, Clone)]
pub struct EmbeddingSource {
    pub path: PathBuf,
    /// Embed INPUT... into `path` (a temporary npy) before reading it.
    pub embed: Option<Box<EmbedConfig>>,
}

#[derive(Debug, Clone)]
pub struct ProbeFitConfig {
    pub truth: PathBuf,
    pub source: EmbeddingSource,
    pub output: PathBuf,
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
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub truth: PathBuf,
    /// Read from this file, or written there by `run` first.
    pub scores: PathBuf,
    /// Score the inputs now (the scores file is then a temporary one unless -o was given).
    pub run: Option<Box<ClassifyConfig>>,
    pub keep_scores: bool,
    pub bootstrap: usize,
    pub seed: u64,
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct InspectConfig {
    pub inputs: InputSpec,
    pub format: InspectFormat,
    pub decode: DecodeOptions,
    pub output: Option<PathBuf>,
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
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct EmbedConfig {
    pub run: RunConfig,
    pub meta: Option<PathBuf>,
    pub texts: Vec<String>,
    pub format: EmbedFormat,
    pub output: Option<PathBuf>,
}

impl Cli {
    pub fn into_config(self) -> Result<Config> {
        let g = self.global;
        let progress = !g.quiet && std::io::stderr().is_terminal();
        let offline = g.offline || crate::source::offline_from_env();
        let model = ModelRequest {
            model: g.model,
            revision: g.revision,
            offline,
            progress,
        };
        let task = match self.command {
            Command::Classify(a) => Task::Classify(classify_config(a)?),
            Command::Embed(a) => Task::Embed(embed_config(a)?),
            Command::Eval(a) => Task::Eval(eval_config(a)?),
            Command::Probe(ProbeCommand::Fit(a)) => Task::ProbeFit(probe_fit_config(a)?),
            Command::Probe(ProbeCommand::Predict(a)) => {
                Task::ProbePredict(probe_predict_config(a)?)
            }
            Command::Inspect(a) => Task::Inspect(InspectConfig {
                inputs: InputSpec {
                    args: a.inputs,
                    ..InputSpec::default()
                },
                format: a.format,
                decode: a.decode.options()?,
                output: a.output,
            }),
        };
        Ok(Config {
            model,
            device: parse_device(&g.device)?,
            dtype: g.dtype,
            quiet: g.quiet,
            verbose: g.verbose,
            task,
        })
    }
}

fn run_config(a: InputArgs) -> Result<RunConfig> {
    // A missing list is a usage error now, before `-o` truncates anything.
    for f in &a.files_from {
        std::fs::File::open(f)
            .with_context(|| format!("cannot open --files-from {}", f.display()))?;
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    Ok(RunConfig {
        inputs: InputSpec {
            args: a.inputs,
            files_from: a.files_from,
            filter: Filter::new(&a.include, &a.exclude)?,
            shard: a.shard,
        },
        batch_size: a.batch_size as usize,
        jobs: a.jobs.map_or(cpus, |j| j as usize),
        resume: a.resume,
        decode: a.decode.options()?,
    })
}

/// `--format`, else a table on a terminal and csv otherwise (files, pipes).
fn classify_format(given: Option<ClassifyFormat>, output: Option<&PathBuf>) -> ClassifyFormat {
    given.unwrap_or_else(|| {
        if output.is_none() && std::io::stdout().is_terminal() {
            ClassifyFormat::Table
        } else {
            ClassifyFormat::Csv
        }
    })
}

fn classify_config(a: ClassifyArgs) -> Result<ClassifyConfig> {
    if a.input.inputs.is_empty() && a.input.files_from.is_empty() {
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
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --labels-file {}", path.display()))?;
        labels.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
        );
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
    let format = classify_format(a.format, a.output.as_ref());
    if a.input.resume && format == ClassifyFormat::Table {
        bail!("--resume needs a csv, tsv or jsonl output (--format)");
    }
    let meta = a.meta.or_else(|| a.output.as_ref().map(|o| meta_path(o)));
    Ok(ClassifyConfig {
        run: run_config(a.input)?,
        labels: classes.iter().map(|c| c.name.clone()).collect(),
        classes,
        ensemble: a.ensemble,
        multilabel: a.multilabel,
        meta,
        logit_scale,
        format,
        output: a.output,
    })
}

fn eval_config(a: EvalArgs) -> Result<EvalConfig> {
    let c = a.classify;
    let given = !c.input.inputs.is_empty() || !c.input.files_from.is_empty();
    let (scores, run, keep) = match (a.scores, given) {
        (Some(_), true) => bail!("eval takes --scores FILE or INPUT... to score now, not both"),
        (None, false) => {
            bail!("eval needs --scores FILE (an earlier classify output) or INPUT... with --labels")
        }
        (Some(path), false) => {
            if !c.labels.is_empty() || c.labels_file.is_some() || c.prompts.is_some() {
                bail!("--labels/--prompts score images now; with --scores the classes come from the file");
            }
            (path, None, true)
        }
        (None, true) => {
            let keep = c.output.is_some();
            let given_meta = c.meta.is_some();
            let path = match &c.output {
                Some(p) => p.clone(),
                None => crate::private_temp_dir("eval")?.join("scores.csv"),
            };
            let mut cc = classify_config(ClassifyArgs {
                output: Some(path.clone()),
                format: Some(c.format.unwrap_or(ClassifyFormat::Csv)),
                ..c
            })?;
            if cc.format == ClassifyFormat::Table {
                bail!("eval keeps its scores as csv, tsv or jsonl, not a table (--format)");
            }
            if !keep && !given_meta {
                cc.meta = None; // no scores kept, no record beside them (unless asked for)
            }
            (path, Some(Box::new(cc)), keep)
        }
    };
    if !a.truth.is_file() {
        bail!("--truth {}: no such file", a.truth.display());
    }
    Ok(EvalConfig {
        truth: a.truth,
        scores,
        run,
        keep_scores: keep,
        bootstrap: a.bootstrap,
        seed: a.seed,
        json: a.json,
    })
}

fn embedding_source(file: Option<PathBuf>, input: InputArgs) -> Result<EmbeddingSource> {
    let given = !input.inputs.is_empty() || !input.files_from.is_empty();
    match (file, given) {
        (Some(_), true) => bail!("give --embeddings FILE or INPUT... to embed now, not both"),
        (None, false) => bail!("needs --embeddings FILE (from `whyxray embed -o`) or INPUT..."),
        (Some(path), false) => {
            if !path.is_file() {
                bail!("--embeddings {}: no such file", path.display());
            }
            Ok(EmbeddingSource { path, embed: None })
        }
        (None, true) => {
            if input.resume {
                bail!("--resume is for classify and embed outputs, not probes");
            }
            let path = crate::private_temp_dir("probe")?.join("embeddings.npy");
            let embed = EmbedConfig {
                run: run_config(input)?,
                meta: Some(meta_path(&path)),
                texts: Vec::new(),
                format: EmbedFormat::Npy,
                output: Some(path.clone()),
            };
            Ok(EmbeddingSource {
                path,
                embed: Some(Box::new(embed)),
            })
        }
    }
}

fn probe_fit_config(a: ProbeFitArgs) -> Result<ProbeFitConfig> {
    if let Some(c) = a.c.filter(|c| !(c.is_finite() && *c > 0.0)) {
        bail!("--c must be a positive number, got {c}");
    }
    if a.cs.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
        bail!("--cs must be positive numbers");
    }
    if !(a.tol.is_finite() && a.tol > 0.0) {
        bail!("--tol must be a positive number");
    }
    if !a.truth.is_file() {
        bail!("--truth {}: no such file", a.truth.display());
    }
    Ok(ProbeFitConfig {
        truth: a.truth,
        source: embedding_source(a.embeddings, a.input)?,
        output: a.output,
        c: a.c,
        cs: a.cs,
        folds: a.folds as usize,
        tol: a.tol,
    })
}

fn probe_predict_config(a: ProbePredictArgs) -> Result<ProbePredictConfig> {
    if !a.probe.is_file() {
        bail!("--probe {}: no such file", a.probe.display());
    }
    let format = classify_format(a.format, a.output.as_ref());
    Ok(ProbePredictConfig {
        probe: a.probe,
        source: embedding_source(a.embeddings, a.input)?,
        format,
        output: a.output,
    })
}

/// `OUT.meta.json` beside an output file.
pub fn meta_path(output: &std::path::Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".meta.json");
    PathBuf::from(name)
}

fn embed_config(a: EmbedArgs) -> Result<EmbedConfig> {
    if a.input.inputs.is_empty() && a.input.files_from.is_empty() && a.text.is_empty() {
        bail!("embed needs images (INPUT... or --files-from) and/or texts (--text ...)");
    }
    if a.format == EmbedFormat::Npy && a.output.is_none() {
        bail!("--format npy needs -o FILE (the array and its .paths.tsv sidecar)");
    }
    if a.format == EmbedFormat::Npy && a.input.resume {
        bail!("--resume works with jsonl output; rerun an npy export from scratch");
    }
    let meta = a.meta.or_else(|| a.output.as_ref().map(|o| meta_path(o)));
    Ok(EmbedConfig {
        run: run_config(a.input)?,
        meta,
        texts: a.text,
        format: a.format,
        output: a.output,
    })
}

fn parse_device(s: &str) -> Result<DeviceChoice> {
    Ok(match s {
        "auto" => DeviceChoice::Auto,
        "cpu" => DeviceChoice::Cpu,
        "cuda" => DeviceChoice::Cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => DeviceChoice::Cuda(n),
            _ => bail!("--device must be auto, cpu, cuda or cuda:N, got {s:?}"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config> {
        Cli::try_parse_from(args)?.into_config()
    }

    #[test]
    fn labels_split_on_commas_and_files_keep_commas() {
        let c = parse(&[
            "whyxray",
            "classify",
            "a.png",
            "--labels",
            "enlarged heart, pleural effusion",
            "x",
        ])
        .unwrap();
        let Task::Classify(c) = c.task else { panic!() };
        assert_eq!(c.labels, ["enlarged heart", "pleural effusion", "x"]);
        assert_eq!(c.run.inputs.args, ["a.png"]);
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&["whyxray", "classify", "a.png", "--labels", "one"]).is_err());
        assert!(parse(&["whyxray", "classify", "a.png", "--labels", "a,a"]).is_err());
        assert!(parse(&[
            "whyxray",
            "classify",
            "a.png",
            "-l",
            "a,b",
            "--logit-scale",
            "-1"
        ])
        .is_err());
        assert!(parse(&["whyxray", "--device", "gpu", "classify", "a.png", "-l", "a,b"]).is_err());
        assert!(parse(&["whyxray", "embed"]).is_err());
        assert!(parse(&["whyxray", "classify", "-l", "a,b"]).is_err());
        assert!(parse(&["whyxray", "classify", "a.png", "-l", "a,b", "--resume"]).is_err());
        assert!(parse(&["whyxray", "classify", "a.png", "-l", "a,b", "--shard", "4/4"]).is_err());
        assert!(parse(&["whyxray", "embed", "a.png", "--format", "npy"]).is_err());
    }

    #[test]
    fn model_options_work_before_or_after_the_subcommand() {
        let c = parse(&[
            "whyxray", "classify", "a.png", "-l", "a,b", "-m", "dir", "--device", "cuda:1",
        ])
        .unwrap();
        assert_eq!(c.model.model, "dir");
        assert_eq!(c.device, DeviceChoice::Cuda(1));
        let c = parse(&["whyxray", "--offline", "embed", "--text", "a, b"]).unwrap();
        assert!(c.model.offline);
        let Task::Embed(e) = c.task else { panic!() };
        assert_eq!(e.texts, ["a, b"]);
    }
}
