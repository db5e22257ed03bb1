//! Labels -> tokens, step 3: OpenAI CLIP's byte-level BPE, applied to each pre-tokenised piece.
//!
//! Symbols are vocabulary ids rather than strings. That is exact because Python's vocabulary
//! (`dict(zip(vocab, range(...)))`) gives every distinct symbol string one id, and a merge
//! result is always itself a vocabulary entry.

use std::collections::HashMap;

use anyhow::{ensure, Context, Result};

use super::clean::is_python_space;

/// `merges[1:49152-256-2+1]`: the header line is skipped and 48,894 merges are used.
pub const MERGE_COUNT: usize = 49152 - 256 - 2;

/// Appended to the last symbol of a piece, so word-final pieces get their own ids.
const END_OF_WORD: &str = "</w>";

pub struct Bpe {
    /// Id of each byte's printable stand-in character, and of that character + `</w>`.
    byte_ids: [u32; 256],
    byte_end_ids: [u32; 256],
    /// `(left, right)` -> `(rank, merged)`: lower ranks merge first.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Ids `0..vocab_len` are BPE symbols; the special tokens follow.
    vocab_len: u32,
}

impl Bpe {
    /// Builds the vocabulary from the decompressed `bpe_simple_vocab_16e6.txt` lines.
    pub fn from_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Self> {
        let merges = parse_merges(lines)?;
        let base = byte_chars();
        let vocab = vocab_strings(&base, &merges);
        // Later duplicates win, as in Python's dict construction.
        let ids: HashMap<&str, u32> = vocab
            .iter()
            .zip(0u32..)
            .map(|(s, i)| (s.as_str(), i))
            .collect();
        let lookup = |s: &str| ids.get(s).copied();
        let (byte_ids, byte_end_ids) = byte_symbol_ids(&base, lookup)?;
        Ok(Self {
            byte_ids,
            byte_end_ids,
            merges: merge_table(&merges, &vocab[2 * base.len()..], lookup)?,
            vocab_len: u32::try_from(vocab.len())?,
        })
    }

    pub fn vocab_len(&self) -> u32 {
        self.vocab_len
    }

    /// Appends the ids of one pre-tokenised piece (`SimpleTokenizer.bpe` + encoder lookup).
    pub fn encode_piece(&self, piece: &str, out: &mut Vec<u32>) {
        let Some((&last, init)) = piece.as_bytes().split_last() else {
            return;
        };
        let mut word: Vec<u32> = init
            .iter()
            .map(|&b| self.byte_ids[usize::from(b)])
            .collect();
        word.push(self.byte_end_ids[usize::from(last)]);
        while word.len() > 1 {
            let Some((pair, merged)) = self.best_pair(&word) else {
                break;
            };
            word = merge_pair(&word, pair, merged);
        }
        out.extend_from_slice(&word);
    }

    /// The adjacent pair with the lowest merge rank, if any pair is mergeable.
    fn best_pair(&self, word: &[u32]) -> Option<((u32, u32), u32)> {
        word.windows(2)
            .filter_map(|w| {
                let pair = (w[0], w[1]);
                self.merges
                    .get(&pair)
                    .map(|&(rank, merged)| (rank, pair, merged))
            })
            .min_by_key(|&(rank, _, _)| rank)
            .map(|(_, pair, merged)| (pair, merged))
    }
}

/// Replaces every non-overlapping occurrence of `pair`, scanning left to right.
fn merge_pair(word: &[u32], pair: (u32, u32), merged: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(word.len());
    let mut i = 0;
    while i < word.len() {
        if i + 1 < word.len() && (word[i], word[i + 1]) == pair {
            out.push(merged);
            i += 2;
        } else {
            out.push(word[i]);
            i += 1;
        }
    }
    out
}

/// `merges[1:49152-256-2+1]`, each line split on (Python) whitespace.
fn parse_merges<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Vec<Vec<&'a str>>> {
    let merges: Vec<Vec<&str>> = lines
        .skip(1)
        .take(MERGE_COUNT)
        .map(|line| {
            line.split(is_python_space)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .collect();
    ensure!(
        merges.len() == MERGE_COUNT,
        "BPE vocabulary has {} merges, expected {MERGE_COUNT}",
        merges.len()
    );
    Ok(merges)
}

/// Ids of each byte's symbol, bare and word-final.
fn byte_symbol_ids(
    base: &[char; 256],
    lookup: impl Fn(&str) -> Option<u32>,
) -> Result<([u32; 256], [u32; 256])> {
    let mut ids = [0; 256];
    let mut end_ids = [0; 256];
    for (b, c) in base.iter().enumerate() {
        ids[b] = lookup(&c.to_string()).context("byte symbol missing")?;
        end_ids[b] = lookup(&format!("{c}{END_OF_WORD}")).context("byte symbol missing")?;
    }
    Ok((ids, end_ids))
}

/// `bytes_to_unicode()`, indexed by byte: the 188 printable bytes stand for themselves, the
/// other 68 (controls, space, NBSP, soft hyphen) move to U+0100.. so no symbol is blank.
fn byte_chars() -> [char; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut chars = ['\0'; 256];
    let mut shifted = 0u32;
    for b in 0..=255u8 {
        chars[usize::from(b)] = if printable(b) {
            char::from(b)
        } else {
            shifted += 1;
            char::from_u32(0xFF + shifted).expect("U+0100..U+0143 are chars")
        };
    }
    chars
}

/// Vocabulary strings in id order: base chars (printable bytes first), the same with `</w>`,
/// then one entry per merge.
fn vocab_strings(base: &[char; 256], merges: &[Vec<&str>]) -> Vec<String> {
    let order = base_order(base);
    let singles = order.iter().map(|c| c.to_string());
    let finals = order.iter().map(|c| format!("{c}{END_OF_WORD}"));
    let joined = merges.iter().map(|parts| parts.concat());
    singles.chain(finals).chain(joined).collect()
}

/// Python builds ids from `bytes_to_unicode().values()`: printable bytes in byte order, then
/// the shifted ones; that is simply ascending code point order.
fn base_order(base: &[char; 256]) -> Vec<char> {
    let mut order = base.to_vec();
    order.sort_unstable();
    order
}

/// `bpe_ranks`, keyed by symbol ids, with each merge's result id alongside its rank.
/// `joined[i]` is merge `i` concatenated, i.e. its vocabulary string.
fn merge_table(
    merges: &[Vec<&str>],
    joined: &[String],
    lookup: impl Fn(&str) -> Option<u32>,
) -> Result<HashMap<(u32, u32), (u32, u32)>> {
    let mut table = HashMap::with_capacity(merges.len());
    for ((rank, parts), joined) in (0u32..).zip(merges).zip(joined) {
        let [left, right] = parts.as_slice() else {
            // Python keeps such a line as a vocabulary entry, but no pair ever matches it.
            continue;
        };
        let merged = lookup(joined).context("merge result missing from the vocabulary")?;
        // A part that is not a symbol can never occur in a word, so its merge never fires.
        if let (Some(l), Some(r)) = (lookup(left), lookup(right)) {
            table.insert((l, r), (rank, merged));
        }
    }
    Ok(table)
}
