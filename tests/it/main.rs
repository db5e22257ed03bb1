//! One integration-test binary: parity with open_clip (tokens, pixels, embeddings,
//! probabilities) through the library, and the command-line contract through the real executable.

mod batch;
mod cli;
mod concepts;
mod dicom;
mod documented;
mod explain;
mod groups;
mod hardening;
mod hub;
mod index;
mod logreg;
mod metrics;
mod model;
mod preprocess;
mod real_model;
mod support;
mod tokenizer;
mod workflows;
