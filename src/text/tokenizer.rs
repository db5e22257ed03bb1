//! Labels -> tokens, steps 2 and 4: pre-tokenisation with CLIP's regex, then BPE ids framed by
//! `<start_of_text>`/`<end_of_text>`, truncated and zero-padded to the context length.

use std::io::{BufRead, BufReader};
use std::sync::{Arc, OnceLock};

use anyhow::{ensure, Result};
use flate2::read::GzDecoder;
use regex::Regex;

use super::bpe::Bpe;
use super::clean::clean_lower;

/// open_clip's vocabulary, as shipped in the `open_clip_torch` 3.3.0 wheel; from OpenAI CLIP,
/// MIT License, Copyright (c) 2021 OpenAI.
const BUNDLED_VOCAB: &[u8] = include_bytes!("../../assets/bpe_simple_vocab_16e6.txt.gz");

/// The header line plus the merges that are used; the rest of the file is never read.
const VOCAB_LINES: usize = super::bpe::MERGE_COUNT + 1;

/// CLIP's pattern: special tokens, ASCII-apostrophe contractions, letter runs, single digits,
/// runs of anything else. Python compiles it with `regex.IGNORECASE`, which matters only for
/// the literals (`'ſ` is a contraction, `<ſtart_of_text>` a piece), so `(?i)` covers just
/// those. On the classes, the `regex` module's case-insensitivity changes one character:
/// U+0345 (combining ypogegrammeni, which case-folds to a letter) matches no branch, so it is
/// silently dropped; it is excluded from the last class for the same effect.
const PATTERN: &str = r"(?i:<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d)|\p{L}+|\p{N}|[^\s\p{L}\p{N}\x{345}]+";

/// open_clip's `SimpleTokenizer` with `clean="lower"`, as `get_tokenizer("ViT-L-14")` builds it.
/// Cloning is cheap: the vocabulary and the pattern are shared.
#[derive(Clone)]
pub struct Tokenizer {
    vocab: Arc<Vocab>,
    context_length: usize,
}

/// The merges and the pre-tokenising pattern: read once per vocabulary, stateless after.
struct Vocab {
    bpe: Bpe,
    pattern: Regex,
}

impl Vocab {
    fn from_gz(bytes: &[u8]) -> Result<Self> {
        let text = read_vocab_lines(bytes)?;
        let bpe = Bpe::from_lines(text.split('\n'))?;
        // The special tokens are appended after the BPE symbols, so their ids depend on it.
        ensure!(
            bpe.vocab_len() == Tokenizer::SOT,
            "vocabulary has {} BPE symbols, expected {}",
            bpe.vocab_len(),
            Tokenizer::SOT
        );
        Ok(Self {
            bpe,
            pattern: Regex::new(PATTERN)?,
        })
    }
}

impl Tokenizer {
    /// `<start_of_text>`: first id of every sequence.
    pub const SOT: u32 = 49406;
    /// `<end_of_text>`: closes every sequence; the text tower pools at its position.
    pub const EOT: u32 = 49407;

    /// The tokenizer over the vocabulary compiled into the binary. Its merges are read once
    /// per process: decompressing and hashing them took ~35 ms, paid by every caller.
    pub fn bundled(context_length: usize) -> Result<Self> {
        static BUNDLED: OnceLock<Arc<Vocab>> = OnceLock::new();
        let vocab = match BUNDLED.get() {
            Some(v) => v.clone(),
            None => {
                let v = Arc::new(Vocab::from_gz(BUNDLED_VOCAB)?);
                BUNDLED.get_or_init(|| v).clone()
            }
        };
        Self::with_vocab(vocab, context_length)
    }

    /// The tokenizer over a gzipped `bpe_simple_vocab_16e6.txt`-format vocabulary.
    pub fn from_gz(bytes: &[u8], context_length: usize) -> Result<Self> {
        Self::with_vocab(Arc::new(Vocab::from_gz(bytes)?), context_length)
    }

    fn with_vocab(vocab: Arc<Vocab>, context_length: usize) -> Result<Self> {
        ensure!(context_length > 0, "context length must be positive");
        Ok(Self {
            vocab,
            context_length,
        })
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Exactly `context_length` ids: SOT, content, EOT, then zeros (open_clip pads with 0, the
    /// id of `!`; harmless since the text tower is causal and pools at the EOT). Too long a
    /// text is cut to fit, and the last kept slot is overwritten with EOT.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(self.context_length.max(2));
        ids.push(Self::SOT);
        ids.extend(self.content_ids(text));
        ids.push(Self::EOT);
        if ids.len() > self.context_length {
            ids.truncate(self.context_length);
            ids[self.context_length - 1] = Self::EOT;
        }
        ids.resize(self.context_length, 0);
        ids
    }

    pub fn encode_batch(&self, texts: &[&str]) -> Vec<Vec<u32>> {
        texts.iter().map(|text| self.encode(text)).collect()
    }

    /// The ids of the cleaned text alone, without SOT/EOT or padding (Python's `encode`).
    pub fn content_ids(&self, text: &str) -> Vec<u32> {
        let cleaned = clean_lower(text);
        let mut ids = Vec::new();
        for piece in self.vocab.pattern.find_iter(&cleaned) {
            match piece.as_str() {
                // Python seeds its BPE cache with the special tokens, mapping them to themselves.
                "<start_of_text>" => ids.push(Self::SOT),
                "<end_of_text>" => ids.push(Self::EOT),
                piece => self.vocab.bpe.encode_piece(piece, &mut ids),
            }
        }
        ids
    }
}

/// The decompressed lines the vocabulary needs, stopping before the unused 200k.
fn read_vocab_lines(bytes: &[u8]) -> Result<String> {
    let mut reader = BufReader::new(GzDecoder::new(bytes));
    let mut text = String::new();
    for _ in 0..VOCAB_LINES {
        if reader.read_line(&mut text)? == 0 {
            break;
        }
    }
    // `read_line` keeps each `\n`; drop the last so splitting yields no trailing empty line.
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}
