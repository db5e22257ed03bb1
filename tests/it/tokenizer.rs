//! Labels -> tokens: the Rust tokenizer against open_clip's own ids (`tests/fixtures/tokens.json`,
//! written by `tests/fixtures/make_tokens.py`), plus the framing rules around the content ids.

use std::sync::LazyLock;

use serde::Deserialize;
use whyxray::text::Tokenizer;

const SOT: u32 = Tokenizer::SOT;
const EOT: u32 = Tokenizer::EOT;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
    known_differences: Vec<KnownDifference>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

/// Mojibake that ftfy repairs and the port deliberately does not (see `text::clean`).
#[derive(Deserialize)]
struct KnownDifference {
    text: String,
    ids: Vec<u32>,
    ids_without_fix_encoding: Vec<u32>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tokens.json");
    let json = std::fs::read_to_string(path).expect("read tokens.json");
    serde_json::from_str(&json).expect("parse tokens.json")
});

static TOKENIZER: LazyLock<Tokenizer> =
    LazyLock::new(|| Tokenizer::bundled(77).expect("bundled vocabulary loads"));

/// Content ids of `text`, i.e. what lies between SOT and the first EOT.
fn content(text: &str) -> Vec<u32> {
    let ids = TOKENIZER.encode(text);
    assert_eq!(ids[0], SOT);
    let end = ids.iter().position(|&id| id == EOT).expect("EOT present");
    ids[1..end].to_vec()
}

#[test]
fn fixture_matches_open_clip() {
    assert!(FIXTURE.cases.len() >= 80, "corpus unexpectedly small");
    let mismatches: Vec<String> = FIXTURE
        .cases
        .iter()
        .filter_map(|case| {
            let got = TOKENIZER.encode(&case.text);
            (got != case.ids)
                .then(|| format!("{:?}\n  want {:?}\n  got  {:?}", case.text, case.ids, got))
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} texts differ from open_clip:\n{}",
        mismatches.len(),
        FIXTURE.cases.len(),
        mismatches.join("\n")
    );
}

#[test]
fn known_differences_are_exactly_the_missing_mojibake_repair() {
    assert!(!FIXTURE.known_differences.is_empty());
    let unexpected: Vec<String> = FIXTURE
        .known_differences
        .iter()
        .filter_map(|case| {
            let got = TOKENIZER.encode(&case.text);
            let ok = got != case.ids && got == case.ids_without_fix_encoding;
            (!ok).then(|| format!("{:?}: got {got:?}", case.text))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "known differences no longer behave as documented (fixed? then move them to cases):\n{}",
        unexpected.join("\n")
    );
}

#[test]
fn examples_from_the_notes() {
    assert_eq!(
        TOKENIZER.encode("enlarged heart")[..5],
        [SOT, 38136, 3480, 1936, EOT]
    );
    assert_eq!(
        TOKENIZER.encode("pleural effusion")[..6],
        [SOT, 926, 33948, 1490, 9364, EOT]
    );
    assert_eq!(content("x-ray"), [343, 268, 3077]);
    assert_eq!(content("it's 2024"), [585, 568, 273, 271, 273, 275]);
    assert_eq!(TOKENIZER.encode("")[..2], [SOT, EOT]);
}

#[test]
fn cleaning_normalises_case_quotes_width_and_entities() {
    assert_eq!(content("ENLARGED   HEART"), content("enlarged heart"));
    assert_eq!(content("it\u{2019}s"), content("it's"));
    assert_eq!(content("\u{FF23}\u{FF34}"), content("ct"));
    assert_eq!(content("\u{FB01}brosis"), content("fibrosis"));
    assert_eq!(content("caf\u{E9}"), content("cafe\u{301}"));
    assert_eq!(content("a &amp;amp; b"), content("a & b"));
}

#[test]
fn literal_special_tokens_map_to_their_ids() {
    assert_eq!(content("<START_OF_TEXT>"), [SOT]);
    let ids = TOKENIZER.encode("a <end_of_text> b");
    assert_eq!(ids[2], EOT, "an early EOT, as open_clip produces");
}

#[test]
fn long_text_is_truncated_with_eot_last() {
    let text = "pleural effusion ".repeat(100);
    let ids = TOKENIZER.encode(&text);
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[0], SOT);
    assert_eq!(ids[76], EOT);
    assert!(ids[1..76].iter().all(|&id| id != 0 && id != EOT));
}

#[test]
fn short_text_is_padded_with_zeros() {
    let ids = TOKENIZER.encode("cardiomegaly");
    let end = ids.iter().position(|&id| id == EOT).unwrap();
    assert_eq!(ids.len(), 77);
    assert!(ids[end + 1..].iter().all(|&id| id == 0));
}

#[test]
fn other_context_lengths_frame_the_same_way() -> anyhow::Result<()> {
    assert_eq!(
        Tokenizer::bundled(6)?.encode("enlarged heart"),
        [SOT, 38136, 3480, 1936, EOT, 0]
    );
    assert_eq!(
        Tokenizer::bundled(4)?.encode("enlarged heart"),
        [SOT, 38136, 3480, EOT]
    );
    assert_eq!(Tokenizer::bundled(1)?.encode("enlarged heart"), [EOT]);
    assert!(Tokenizer::bundled(0).is_err());
    Ok(())
}

#[test]
fn batch_matches_single_encodes() {
    let texts = ["no finding", "Pneumothorax", ""];
    let batch = TOKENIZER.encode_batch(&texts);
    let singles: Vec<Vec<u32>> = texts.iter().map(|t| TOKENIZER.encode(t)).collect();
    assert_eq!(batch, singles);
}

#[test]
fn from_gz_rejects_a_truncated_vocabulary() {
    let vocab = b"#version: 0.2\ni n\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, vocab).unwrap();
    assert!(Tokenizer::from_gz(&gz.finish().unwrap(), 77).is_err());
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Tokenizer>();
};
