//! Probe: image embeddings (or concept scores) + labels -> a linear probe (fit), and a probe +
//! embeddings -> class probabilities (predict): the paper's linear-probe protocol.

pub mod data;
pub mod explain;
pub mod features;
pub mod logreg;
mod solver;
pub mod train;
