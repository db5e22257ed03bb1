//! Command line: clap definitions (the contract in shared/CLI.md) parsed once into a validated
//! `Config`; nothing downstream sees raw strings.

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
    /// Where the model runs: auto, cpu, cuda or cuda:N.
    #[arg(long, global = true, default_value = "auto")]
    pub device: String,
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

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Image files, directories (searched recursively, sorted) or `-` for paths on stdin.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Candidate labels; a value may hold several, comma-separated. Put it after the inputs.
    #[arg(short, long, num_args = 1.., value_name = "LABEL")]
    pub labels: Vec<String>,
    /// File with one label per line (commas kept).
    #[arg(long, value_name = "FILE")]
    pub labels_file: Option<PathBuf>,
    /// Scale S in softmax(S * cos): a number, or `model` for the checkpoint's exp(logit_scale).
    #[arg(long, default_value = "100", value_name = "S")]
    pub logit_scale: String,
    /// Output format [default: table on a terminal, else csv].
    #[arg(long, value_enum)]
    pub format: Option<ClassifyFormat>,
    /// Write results to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Image files, directories or `-` for paths on stdin.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
    /// Texts to embed (each value is one text; commas are kept).
    #[arg(long, num_args = 1.., value_name = "TEXT")]
    pub text: Vec<String>,
    /// jsonl: one object per item; npy: a float32 [items, dim] array (needs -o or a pipe).
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: EmbedFormat,
    /// Write results to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LogitScale {
    Fixed(f32),
    Model,
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
    pub quiet: bool,
    pub verbose: bool,
    pub task: Task,
}

#[derive(Debug, Clone)]
pub enum Task {
    Classify(ClassifyConfig),
    Embed(EmbedConfig),
}

#[derive(Debug, Clone)]
pub struct ClassifyConfig {
    pub inputs: Vec<String>,
    pub labels: Vec<String>,
    pub logit_scale: LogitScale,
    pub format: ClassifyFormat,
    pub output: Option<PathBuf>,
    pub batch_size: usize,
}

#[derive(Debug, Clone)]
pub struct EmbedConfig {
    pub inputs: Vec<String>,
    pub texts: Vec<String>,
    pub format: EmbedFormat,
    pub output: Option<PathBuf>,
    pub batch_size: usize,
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
        };
        Ok(Config {
            model,
            device: parse_device(&g.device)?,
            quiet: g.quiet,
            verbose: g.verbose,
            task,
        })
    }
}

fn classify_config(a: ClassifyArgs) -> Result<ClassifyConfig> {
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
    if labels.len() < 2 {
        bail!("classify needs at least two labels (--labels a,b or --labels-file FILE)");
    }
    if let Some(dup) = labels
        .iter()
        .enumerate()
        .find_map(|(i, l)| labels[..i].contains(l).then_some(l))
    {
        bail!("label {dup:?} is given twice");
    }
    let logit_scale = match a.logit_scale.as_str() {
        "model" => LogitScale::Model,
        s => match s.parse::<f32>() {
            Ok(v) if v.is_finite() && v > 0.0 => LogitScale::Fixed(v),
            _ => bail!("--logit-scale must be a positive number or `model`, got {s:?}"),
        },
    };
    let format = a.format.unwrap_or_else(|| {
        if a.output.is_none() && std::io::stdout().is_terminal() {
            ClassifyFormat::Table
        } else {
            ClassifyFormat::Csv
        }
    });
    Ok(ClassifyConfig {
        inputs: a.inputs,
        labels,
        logit_scale,
        format,
        output: a.output,
        batch_size: a.batch_size as usize,
    })
}

fn embed_config(a: EmbedArgs) -> Result<EmbedConfig> {
    if a.inputs.is_empty() && a.text.is_empty() {
        bail!("embed needs images (INPUT...) and/or texts (--text ...)");
    }
    if a.format == EmbedFormat::Npy && a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("--format npy writes binary data: give -o FILE or redirect stdout");
    }
    Ok(EmbedConfig {
        inputs: a.inputs,
        texts: a.text,
        format: a.format,
        output: a.output,
        batch_size: a.batch_size as usize,
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
        assert_eq!(c.inputs, ["a.png"]);
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
