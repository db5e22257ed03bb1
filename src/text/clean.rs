//! Labels -> tokens, step 1: open_clip's `clean="lower"` text cleaning, run before BPE.
//!
//! open_clip computes `whitespace_clean(basic_clean(text)).lower()`, i.e.
//! `ftfy.fix_text` -> `html.unescape` twice -> `strip` -> `" ".join(split())` -> `str.lower`.
//!
//! ftfy 6.3.1's `fix_text` (default config) is ported step for step, in its order, segment by
//! segment and repeated until nothing changes, **except `fix_encoding`** (mojibake repair:
//! `is_bad` badness heuristic, re-encoding through ten single-byte codecs, `restore_byte_a0`,
//! `replace_lossy_sequences`, `decode_inconsistent_utf8`, CESU-8 decoding). That step only acts
//! on non-ASCII text its heuristic finds suspicious (`cafÃ©`, `donâ€™t`); porting it means
//! reproducing codec tables and a large hand-tuned regex for text that does not occur in class
//! labels, so such text tokenizes differently here (pinned by `known_differences` in the test
//! fixture). The C1 controls that heuristic also reacts to are still mapped, by ftfy's own
//! `fix_c1_controls` step, which gives the same result unless the text is mojibake.
//! `fix_surrogates` has nothing to do: a Rust `&str` cannot hold surrogates.

use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::html::{self, SLOPPY_1252_C1};

/// ftfy's `max_decode_length`: longer lines are fixed in pieces of this many characters.
const MAX_SEGMENT_CHARS: usize = 1_000_000;

/// The full `clean="lower"` pipeline.
pub fn clean_lower(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped = html::unescape(&html::unescape(&fixed));
    // `split()` already drops leading/trailing whitespace, so `strip()` needs no code.
    collapse_whitespace(&unescaped).to_lowercase()
}

/// Python `" ".join(text.split())`.
pub fn collapse_whitespace(text: &str) -> String {
    text.split(is_python_space)
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Python's `str.isspace`, which unlike Unicode `White_Space` includes U+001C..=U+001F.
pub fn is_python_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1C}'..=' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// `ftfy.fix_text` with the default config, minus `fix_encoding` (see the module docs).
pub fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // "auto": once a segment contains `<` the text is taken for HTML, and entities are kept
    // from then on (ftfy replaces its config, so this sticks for later segments too).
    let mut unescape = true;
    for segment in segments(text) {
        unescape &= !segment.contains('<');
        out.push_str(&fix_segment(segment, unescape));
    }
    out
}

/// ftfy fixes each line (ending with its `\n`) on its own, cut to `MAX_SEGMENT_CHARS`.
fn segments(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n').flat_map(|line| {
        let mut rest = line;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let cut = rest
                .char_indices()
                .nth(MAX_SEGMENT_CHARS)
                .map_or(rest.len(), |(i, _)| i);
            let (head, tail) = rest.split_at(cut);
            rest = tail;
            Some(head)
        })
    })
}

/// `ftfy.fix_and_explain`: apply every fixer in order until a full pass changes nothing.
fn fix_segment(segment: &str, unescape: bool) -> String {
    let mut text = segment.to_owned();
    loop {
        let mut next = if unescape {
            html::ftfy_unescape(&text)
        } else {
            text.clone()
        };
        for fixer in FIXERS {
            next = fixer(&next);
        }
        next = next.nfc().collect();
        if next == text {
            return text;
        }
        text = next;
    }
}

/// ftfy's fixer order after `fix_encoding`; `fix_surrogates` is vacuous in Rust.
const FIXERS: [fn(&str) -> String; 7] = [
    fix_c1_controls,
    fix_latin_ligatures,
    fix_character_width,
    uncurl_quotes,
    fix_line_breaks,
    remove_terminal_escapes,
    remove_control_chars,
];

/// C1 controls are almost always windows-1252 bytes read as Latin-1.
fn fix_c1_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{80}'..='\u{9F}' => SLOPPY_1252_C1[c as usize - 0x80],
            _ => c,
        })
        .collect()
}

/// Latin ligatures and legacy digraphs come from copy-paste, not intent; others are kept.
fn fix_latin_ligatures(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match ligature(c) {
            Some(letters) => out.push_str(letters),
            None => out.push(c),
        }
    }
    out
}

fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// Fullwidth/halfwidth forms (U+FF01..=U+FFEF) become their NFKC form, U+3000 a space.
fn fix_character_width(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{3000}' => out.push(' '),
            '\u{FF01}'..='\u{FFEF}' => out.extend(std::iter::once(c).nfkc()),
            _ => out.push(c),
        }
    }
    out
}

fn uncurl_quotes(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{201C}'..='\u{201F}' => '"',
            '\u{2BC}' | '\u{2018}'..='\u{201B}' => '\'',
            _ => c,
        })
        .collect()
}

fn fix_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n")
}

/// ANSI colour codes and the like; `\d` is Unicode in both Python `re` and Rust `regex`.
fn remove_terminal_escapes(text: &str) -> String {
    static ANSI: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\x1b\[(?:\d|;)*[a-zA-Z]").expect("valid regex"));
    ANSI.replace_all(text, "").into_owned()
}

/// Invisible controls that carry no meaning in plain text; whitespace controls are kept.
fn remove_control_chars(text: &str) -> String {
    text.chars()
        .filter(|&c| {
            !matches!(
                c,
                '\0'..='\u{8}'
                    | '\u{B}'
                    | '\u{E}'..='\u{1F}'
                    | '\u{7F}'
                    | '\u{206A}'..='\u{206F}'
                    | '\u{FEFF}'
                    | '\u{FFF9}'..='\u{FFFC}'
            )
        })
        .collect()
}
