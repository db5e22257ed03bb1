//! Labels -> tokens: open_clip's SimpleTokenizer (text cleaning + byte-level BPE), the first step of the text tower.
//!
//! Bit-exact with `open_clip.get_tokenizer("ViT-L-14")` (open_clip_torch 3.3.0, ftfy 6.3.1),
//! with two deliberate gaps:
//! - ftfy's mojibake repair is not ported (see [`clean`]); `tests/fixtures/tokens.json` lists
//!   such texts under `known_differences`.
//! - Unicode versions: CPython 3.11's `str.lower` and NFC use Unicode 14, the `regex` module
//!   its own newer tables, Rust's std and `regex` crate theirs. Only characters unassigned in
//!   Unicode 14 are affected; for every assigned one, `"a{c}b {c}. {c}"` was checked to give
//!   open_clip's ids.

mod bpe;
pub mod cache;
pub mod clean;
mod html;
mod tokenizer;

pub use tokenizer::Tokenizer;
