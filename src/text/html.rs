//! Labels -> tokens, cleaning sub-step: HTML character references, decoded exactly as Python's
//! `html.unescape` and ftfy's stricter `unescape_html` decode them.

use std::sync::LazyLock;

use htmlize::ENTITIES;
use regex::{Captures, Regex};

/// Python's `html._charref`: numeric references and up to 32 name characters, `;` optional.
static CHARREF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)").expect("valid regex")
});

/// ftfy's `HTML_ENTITY_RE`: only references that end in `;`, so "this&not that" survives.
static FTFY_ENTITY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").expect("valid regex"));

/// Python's `html.unescape` (HTML5 rules, including semicolon-less legacy names).
pub fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    CHARREF
        .replace_all(text, |caps: &Captures| replace_charref(&caps[0]))
        .into_owned()
}

/// ftfy's `fixes.unescape_html`.
pub fn ftfy_unescape(text: &str) -> String {
    FTFY_ENTITY
        .replace_all(text, |caps: &Captures| ftfy_fixup(&caps[0]))
        .into_owned()
}

/// Expansion of a full reference such as `&amp;` or `&amp` from the WHATWG table.
fn entity(reference: &str) -> Option<&'static str> {
    ENTITIES
        .get(reference.as_bytes())
        .map(|v| std::str::from_utf8(v).expect("htmlize entities are UTF-8"))
}

/// `html._replace_charref`; `reference` still starts with `&`.
fn replace_charref(reference: &str) -> String {
    let body = &reference[1..];
    if let Some(digits) = body.strip_prefix('#') {
        return numeric_charref(digits.trim_end_matches(';'));
    }
    if let Some(expansion) = entity(reference) {
        return expansion.to_owned();
    }
    // The HTML5 "longest legacy prefix" rule: `&notit;` -> `¬it;`. Prefixes are at least
    // two characters and never the whole body, as in Python's `range(len(s)-1, 1, -1)`.
    let cuts: Vec<usize> = body.char_indices().map(|(i, _)| i + 1).skip(2).collect();
    for &cut in cuts.iter().rev() {
        if let Some(expansion) = entity(&reference[..cut]) {
            return format!("{expansion}{}", &reference[cut..]);
        }
    }
    reference.to_owned()
}

/// Numeric reference without `&#` and `;`: `x27` or `39`.
fn numeric_charref(digits: &str) -> String {
    let (digits, radix) = match digits.strip_prefix(['x', 'X']) {
        Some(hex) => (hex, 16),
        None => (digits, 10),
    };
    // Python parses arbitrarily large integers; anything past U+10FFFF behaves the same.
    let num = digits.chars().fold(0u32, |acc, d| {
        let d = d.to_digit(radix).expect("regex admits only digits");
        acc.saturating_mul(radix).saturating_add(d)
    });
    if let Some(replacement) = invalid_charref(num) {
        return replacement.to_string();
    }
    if (0xD800..=0xDFFF).contains(&num) || num > 0x10FFFF {
        return '\u{FFFD}'.to_string();
    }
    if is_invalid_codepoint(num) {
        return String::new();
    }
    char::from_u32(num).map(String::from).unwrap_or_default()
}

/// Windows-1252 reading of bytes 0x80..=0x9F, leaving its five holes as C1 controls. It is both
/// Python's `_invalid_charrefs` table and ftfy's `sloppy-windows-1252` codec for that range.
pub(super) const SLOPPY_1252_C1: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}', '\u{8F}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}', '\u{178}',
];

/// `html._invalid_charrefs`: NUL, CR and the C1 range.
fn invalid_charref(num: u32) -> Option<char> {
    match num {
        0x00 => Some('\u{FFFD}'),
        0x0D => Some('\r'),
        0x80..=0x9F => Some(SLOPPY_1252_C1[(num - 0x80) as usize]),
        _ => None,
    }
}

/// `html._invalid_codepoints`: decoded to nothing.
fn is_invalid_codepoint(num: u32) -> bool {
    matches!(num, 0x01..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F..=0x9F | 0xFDD0..=0xFDEF)
        || (num & 0xFFFE == 0xFFFE && num <= 0x10FFFF)
}

/// ftfy's `_unescape_fixup` for one `&...;` match.
fn ftfy_fixup(reference: &str) -> String {
    if let Some(expansion) = entity(reference)
        .map(str::to_owned)
        .or_else(|| shouted_entity(reference))
    {
        return expansion;
    }
    if reference.starts_with("&#") {
        let unescaped = unescape(reference);
        // A partial decode (e.g. `&#12ab;`) leaves the `;`; ftfy then keeps the original.
        if !unescaped.contains(';') {
            return unescaped;
        }
    }
    reference.to_owned()
}

/// ftfy also accepts upper-cased forms of all-lowercase names (`&EACUTE;` -> `É`), but only
/// where `html.unescape` would leave that spelling alone (so not `&LTIMES;`, which it reads
/// as `&LT` + `IMES;`).
fn shouted_entity(reference: &str) -> Option<String> {
    let lower = reference.to_ascii_lowercase();
    if lower.to_ascii_uppercase() != reference || unescape(reference) != reference {
        return None;
    }
    entity(&lower).map(str::to_uppercase)
}
