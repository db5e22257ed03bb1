//! whyxray: WhyXrayCLIP (open_clip ViT) natively in Rust. The pipeline, one module a stage:
//! `source` (which files) -> `image` (decode, preprocess) -> `model` (vision and text towers)
//! <- `text` (labels -> tokens); then `score` -> `output`. `commands` wires them per subcommand.
//!
//! A research tool: not a medical device, not for diagnosis.

pub mod cli;
pub mod commands;
pub mod image;
pub mod inputs;
pub mod model;
pub mod output;
pub mod printer;
pub mod score;
pub mod source;
pub mod text;

/// Exit status of a run that finished: how many inputs failed decides 0 or 1.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub scored: usize,
    pub failed: usize,
}
