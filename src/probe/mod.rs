//! Probe: image embeddings (or concept scores) + labels -> a linear probe (fit), and a probe +
//! embeddings -> class probabilities (predict): the paper's linear-probe protocol.

pub mod data;
pub mod logreg;
mod solver;
