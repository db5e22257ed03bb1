//! Command line: clap definitions (the contract in shared/CLI.md) parsed once into a validated
//! `Config`; nothing downstream sees raw strings.

mod classify;
mod concepts;
mod duplicates;
mod embed;
mod eval;
mod explain;
mod inspect;
mod labels;
mod outputs;
mod probe;
mod run;
mod search;

pub use classify::{ClassifyArgs, ClassifyConfig, ClassifyFormat};
pub use concepts::{ConceptsArgs, ConceptsConfig, ConceptsFormat};
pub use duplicates::{DuplicatesArgs, DuplicatesConfig};
pub use embed::{EmbedArgs, EmbedConfig, EmbedFormat};
pub use eval::{EvalArgs, EvalConfig};
pub use explain::{ExplainArgs, ExplainConfig, TargetChoice};
pub use inspect::{InspectArgs, InspectConfig, InspectFormat};
pub use labels::{LabelArgs, LogitScale};
pub use outputs::{same_file, sidecar};
pub use probe::{
    ConceptSpec, EmbeddingSource, ProbeCommand, ProbeExplainArgs, ProbeExplainConfig, ProbeFitArgs,
    ProbeFitConfig, ProbePredictArgs, ProbePredictConfig,
};
pub use run::{DecodeArgs, InputArgs, RunConfig};
pub use search::{SearchArgs, SearchConfig};

use crate::source::ModelRequest;
use anyhow::{bail, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;

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

/// The model options: global, so that `whyxray -m DIR classify ...` and `whyxray classify
/// ... -m DIR` both work (shared/CLI.md); hidden from the help of `inspect`, which loads none.
const MODEL_OPTIONS: &[&str] = &["model", "revision", "offline", "device", "dtype"];

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Hugging Face hub repo id or local directory with open_clip_config.json and weights.
    #[arg(
        short = 'm',
        long,
        global = true,
        default_value = "yyupenn/whyxrayclip",
        help_heading = "Model"
    )]
    pub model: String,
    /// Hub branch, tag or commit sha.
    #[arg(long, global = true, default_value = "main", help_heading = "Model")]
    pub revision: String,
    /// Never touch the network (same as HF_HUB_OFFLINE=1).
    #[arg(long, global = true, help_heading = "Model")]
    pub offline: bool,
    /// Where the model runs: auto (a GPU when built with CUDA and one is present), cpu,
    /// cuda or cuda:N.
    #[arg(
        long,
        global = true,
        default_value = "auto",
        env = "WHYXRAY_DEVICE",
        help_heading = "Model"
    )]
    pub device: String,
    /// Weights and activations: f32, f16 or bf16 [default: bf16 on CUDA, f32 on CPU].
    /// Normalisation, cosines and softmax are float32 whatever it is.
    #[arg(long, global = true, value_enum, help_heading = "Model")]
    pub dtype: Option<DtypeChoice>,
    /// No progress bars or notes on stderr; failures are still named.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
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
    /// Heatmaps of where each label's score comes from (gradient-weighted attention, Grad-CAM
    /// or occlusion) on the original images, with strips and an HTML gallery. These are
    /// explanations of the model, not localisation of disease.
    #[command(after_help = RESEARCH_ONLY)]
    Explain(ExplainArgs),
    /// How strongly each image shows each concept of a bank (radiological findings in words):
    /// the cosine of image and concept, and the concepts most present in each image.
    #[command(after_help = RESEARCH_ONLY)]
    Concepts(ConceptsArgs),
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
    /// Exact cosine search of an embedding index (from `embed`) for texts, images or
    /// embeddings: the K most similar images per query, or all above a cosine.
    #[command(after_help = RESEARCH_ONLY)]
    Search(SearchArgs),
    /// Every pair of images at or above a cosine, within one embedding file or between two
    /// (near-duplicate audits, e.g. the same patient in train and test); no model is loaded.
    Duplicates(DuplicatesArgs),
}

/// The clap command, with the model options hidden where no model is loaded.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    // In place: `mut_arg` would reorder the built argument index.
    let hide = |sub: clap::Command| {
        sub.mut_args(|a| {
            let model = MODEL_OPTIONS.contains(&a.get_id().as_str());
            a.hide(model)
        })
    };
    cmd.mut_subcommand("inspect", hide)
        .mut_subcommand("duplicates", hide)
}

/// The process's arguments as a validated `Config`; clap reports its own usage errors (exit 2).
pub fn parse() -> Result<Config> {
    config_from(command().get_matches())
}

/// As `parse`, from given arguments (the first is the program name).
pub fn parse_from<I, T>(args: I) -> Result<Config>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    config_from(command().try_get_matches_from(args)?)
}

fn config_from(matches: ArgMatches) -> Result<Config> {
    let cli = Cli::from_arg_matches(&matches)?;
    cli.into_config(&Given::new(&matches))
}

/// Which options were typed on the command line (not defaulted), in the subcommand's matches.
pub struct Given<'a> {
    top: &'a ArgMatches,
    sub: &'a ArgMatches,
}

impl<'a> Given<'a> {
    fn new(top: &'a ArgMatches) -> Self {
        let mut sub = top;
        while let Some((_, m)) = sub.subcommand() {
            sub = m;
        }
        Self { top, sub }
    }

    pub fn has(&self, id: &str) -> bool {
        let typed = |m: &ArgMatches| {
            m.try_get_raw(id).is_ok_and(|v| v.is_some())
                && m.value_source(id) == Some(ValueSource::CommandLine)
        };
        typed(self.sub) || typed(self.top)
    }

    /// Refuses the first of `ids` that was typed: it would do nothing `why`.
    pub fn refuse(&self, ids: &[&str], why: &str) -> Result<()> {
        match ids.iter().find(|id| self.has(id)) {
            Some(id) if *id == "inputs" => bail!("INPUT... does nothing {why}"),
            Some(id) => bail!("--{} does nothing {why}", id.replace('_', "-")),
            None => Ok(()),
        }
    }
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
    Concepts(Box<ConceptsConfig>),
    Explain(Box<ExplainConfig>),
    Inspect(InspectConfig),
    Eval(EvalConfig),
    ProbeFit(ProbeFitConfig),
    ProbePredict(ProbePredictConfig),
    ProbeExplain(ProbeExplainConfig),
    Search(SearchConfig),
    Duplicates(DuplicatesConfig),
}

impl Cli {
    pub fn into_config(self, given: &Given) -> Result<Config> {
        let g = self.global;
        let progress = !g.quiet && std::io::stderr().is_terminal();
        let offline = g.offline || crate::source::offline_from_env();
        let mut model = ModelRequest {
            model: g.model,
            revision: g.revision,
            offline,
            progress,
        };
        let task = match self.command {
            Command::Classify(a) => Task::Classify(classify::config(a, &model)?),
            Command::Embed(a) => Task::Embed(embed::config(a, &model)?),
            Command::Explain(a) => Task::Explain(Box::new(explain::config(a, &model, given)?)),
            Command::Concepts(a) => Task::Concepts(Box::new(concepts::config(a, &model)?)),
            Command::Eval(a) => Task::Eval(eval::config(a, &model, given)?),
            Command::Probe(ProbeCommand::Fit(a)) => {
                Task::ProbeFit(probe::fit_config(a, &mut model, given)?)
            }
            Command::Probe(ProbeCommand::Explain(a)) => {
                given.refuse(MODEL_OPTIONS, "for probe explain, which loads no model")?;
                Task::ProbeExplain(probe::explain_config(a)?)
            }
            Command::Probe(ProbeCommand::Predict(a)) => {
                Task::ProbePredict(probe::predict_config(a, &model, given)?)
            }
            Command::Inspect(a) => {
                given.refuse(MODEL_OPTIONS, "for inspect, which loads no model")?;
                Task::Inspect(inspect::config(a)?)
            }
            Command::Search(a) => Task::Search(search::config(a, &mut model, given)?),
            Command::Duplicates(a) => {
                given.refuse(MODEL_OPTIONS, "for duplicates, which loads no model")?;
                Task::Duplicates(duplicates::config(a)?)
            }
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
        parse_from(args)
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
