//! Index: dataset-level analysis on the embeddings `embed` writes, after the model — exact
//! cosine search (texts, images or embeddings against an index) and all pairs above a
//! threshold (near-duplicate audits), read in place from the npy and scanned in blocks.

pub mod file;
pub mod scan;

pub use file::EmbeddingFile;
pub use scan::{pairs, search, Hit, Pair, Want};
