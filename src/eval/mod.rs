//! Evaluate: scores (a classify output, or a run made on the spot) + ground truth -> metrics
//! with bootstrap intervals (`whyxray eval`).

pub mod data;
pub mod groups;
pub mod metrics;
pub mod report;
