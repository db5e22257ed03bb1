//! `whyxray search` and `whyxray duplicates` through the executable, against a brute-force
//! float64 NumPy reference (tests/fixtures/index/make_index_reference.py).

use crate::support::*;
use serde_json::Value;
use std::path::PathBuf;

fn dir() -> PathBuf {
    root().join("tests/fixtures/index")
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("index_reference.json")).unwrap())
        .unwrap()
}

fn jsonl(args: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let mut cmd = whyxray();
    cmd.current_dir(dir())
        .args(args)
        .args(["--format", "jsonl"]);
    let out = run(&mut cmd);
    let rows = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.code(), rows, stderr(&out))
}

fn row_of(name: &str, prefix: &str) -> u64 {
    name.strip_prefix(prefix)
        .and_then(|n| n.strip_suffix(".png"))
        .unwrap()
        .parse()
        .unwrap()
}

/// Hits in the same order as the reference: the same rows, cosines within 1e-6; rows whose
/// reference cosines differ by less than float64 noise may come in either order.
fn same_hits(got: &[(u64, f64)], want: &[Value], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?}");
    for (i, ((row, cos), w)) in got.iter().zip(want).enumerate() {
        let wc = w["cosine"].as_f64().unwrap();
        assert!((cos - wc).abs() <= 1e-6, "{what} #{i}: {cos} vs {wc}");
        if w["row"].as_u64() != Some(*row) {
            let tied = want.iter().any(|o| {
                o["row"].as_u64() == Some(*row)
                    && (o["cosine"].as_f64().unwrap() - wc).abs() < 1e-12
            });
            assert!(tied, "{what} #{i}: row {row}, reference {}", w["row"]);
        }
    }
}

#[test]
fn search_matches_brute_force_numpy() {
    let r = reference();
    for (k, want) in r["top"].as_object().unwrap() {
        let (code, rows, err) =
            jsonl(&["search", "--index", "a.npy", "--queries", "q.npy", "-k", k]);
        assert_eq!(code, Some(0), "{err}");
        for (q, want) in want.as_array().unwrap().iter().enumerate() {
            let name = format!("/queries/q{q}.png");
            let got: Vec<(u64, f64)> = rows
                .iter()
                .filter(|v| v["query"] == name.as_str())
                .map(|v| {
                    let rank = v["rank"].as_u64().unwrap();
                    assert!(rank >= 1);
                    (
                        row_of(v["file"].as_str().unwrap(), "/data/a/img"),
                        v["cosine"].as_f64().unwrap(),
                    )
                })
                .collect();
            same_hits(&got, want.as_array().unwrap(), &format!("k={k} q{q}"));
        }
    }
    // k larger than the index returns every usable row: not the failed image, not the text.
    let (_, rows, _) = jsonl(&[
        "search",
        "--index",
        "a.npy",
        "--queries",
        "q.npy",
        "-k",
        "400",
    ]);
    assert_eq!(
        rows.iter()
            .filter(|v| v["query"] == "/queries/q0.png")
            .count(),
        298
    );
    assert!(rows
        .iter()
        .all(|v| v["file"] != "/data/a/img150.png" && v["file"] != "a chest tube"));
    // Exact copies tie; the earlier row comes first.
    let (_, rows, _) = jsonl(&[
        "search",
        "--index",
        "a.npy",
        "--queries",
        "q.npy",
        "-k",
        "3",
    ]);
    let q0: Vec<&str> = rows
        .iter()
        .filter(|v| v["query"] == "/queries/q0.png")
        .map(|v| v["file"].as_str().unwrap())
        .collect();
    assert_eq!(q0[0], "/data/a/img007.png");
    assert_eq!(q0[1], "/data/a/img040.png");
}

#[test]
fn search_above_a_cosine_and_an_empty_result() {
    let r = reference();
    for (c, want) in r["above"].as_object().unwrap() {
        let (code, rows, err) = jsonl(&[
            "search",
            "--index",
            "a.npy",
            "--queries",
            "q.npy",
            "--min-cos",
            c,
        ]);
        assert_eq!(code, Some(0), "{err}");
        for (q, want) in want.as_array().unwrap().iter().enumerate() {
            let name = format!("/queries/q{q}.png");
            let got: Vec<(u64, f64)> = rows
                .iter()
                .filter(|v| v["query"] == name.as_str())
                .map(|v| {
                    (
                        row_of(v["file"].as_str().unwrap(), "/data/a/img"),
                        v["cosine"].as_f64().unwrap(),
                    )
                })
                .collect();
            same_hits(&got, want.as_array().unwrap(), &format!("min-cos {c} q{q}"));
        }
        if c == "1.01" {
            assert!(
                rows.is_empty() && err.contains("no image is at or above"),
                "{err}"
            );
        }
    }
    // -k with --min-cos: the best K of those above.
    let (_, rows, _) = jsonl(&[
        "search",
        "--index",
        "a.npy",
        "--queries",
        "q.npy",
        "--min-cos",
        "0.5",
        "-k",
        "2",
    ]);
    assert!(rows.iter().all(|v| v["rank"].as_u64().unwrap() <= 2));
}

#[test]
fn duplicates_within_and_between_files_match_brute_force_numpy() {
    let r = reference();
    let check = |got: &[Value], want: &[Value], pa: &str, pb: &str, what: &str| {
        assert_eq!(got.len(), want.len(), "{what}: {got:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                row_of(g["a"].as_str().unwrap(), pa),
                w["a"].as_u64().unwrap(),
                "{what}"
            );
            assert_eq!(
                row_of(g["b"].as_str().unwrap(), pb),
                w["b"].as_u64().unwrap(),
                "{what}"
            );
            let (gc, wc) = (g["cosine"].as_f64().unwrap(), w["cosine"].as_f64().unwrap());
            assert!((gc - wc).abs() <= 1e-6, "{what}: {gc} vs {wc}");
        }
    };
    for (c, want) in r["pairs_within"].as_object().unwrap() {
        let (code, rows, err) = jsonl(&["duplicates", "--index", "a.npy", "--min-cos", c]);
        assert_eq!(code, Some(0), "{err}");
        check(
            &rows,
            want.as_array().unwrap(),
            "/data/a/img",
            "/data/a/img",
            &format!("within {c}"),
        );
        assert!(
            err.contains(&format!("{} pairs at cosine >= {c}", rows.len())),
            "{err}"
        );
    }
    for (c, want) in r["pairs_against"].as_object().unwrap() {
        let (code, rows, err) = jsonl(&[
            "duplicates",
            "--index",
            "a.npy",
            "--against",
            "b.npy",
            "--min-cos",
            c,
        ]);
        assert_eq!(code, Some(0), "{err}");
        check(
            &rows,
            want.as_array().unwrap(),
            "/data/a/img",
            "/data/b/scan",
            &format!("against {c}"),
        );
    }
    let (_, none, err) = jsonl(&["duplicates", "--index", "a.npy", "--min-cos", "1"]);
    assert!(
        none.len() <= 2 && err.contains("pairs at cosine >= 1"),
        "{err}"
    );
}

#[test]
fn indexes_without_a_record_of_another_model_or_truncated_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["a.npy", "a.npy.paths.tsv"] {
        std::fs::copy(dir().join(f), tmp.path().join(f)).unwrap();
    }
    let refused = |args: &[&str], cwd: &std::path::Path, needle: &str| {
        let mut cmd = whyxray();
        let out = run(cmd.current_dir(cwd).args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    };
    refused(
        &[
            "search",
            "--index",
            "a.npy",
            "--queries",
            &dir().join("q.npy").display().to_string(),
        ],
        tmp.path(),
        "has no a.npy.meta.json",
    );
    refused(
        &["duplicates", "--index", "a.npy", "--min-cos", "0.9"],
        tmp.path(),
        "nothing says which model",
    );
    refused(
        &["search", "--index", "a.npy", "--queries", "other_model.npy"],
        &dir(),
        "refusing to compare",
    );
    refused(
        &[
            "duplicates",
            "--index",
            "a.npy",
            "--against",
            "other_model.npy",
            "--min-cos",
            "0.9",
        ],
        &dir(),
        "mean nothing",
    );
    std::fs::copy(
        dir().join("a.npy.meta.json"),
        tmp.path().join("a.npy.meta.json"),
    )
    .unwrap();
    let bytes = std::fs::read(dir().join("a.npy")).unwrap();
    std::fs::write(tmp.path().join("a.npy"), &bytes[..bytes.len() - 100]).unwrap();
    refused(
        &["duplicates", "--index", "a.npy", "--min-cos", "0.9"],
        tmp.path(),
        "is truncated",
    );
    refused(
        &["duplicates", "--index", "a.npy", "--min-cos", "2"],
        tmp.path(),
        "between -1 and 1",
    );
    refused(
        &[
            "duplicates",
            "--index",
            "a.npy",
            "--min-cos",
            "0.9",
            "-m",
            "x/y",
        ],
        tmp.path(),
        "--model does nothing",
    );
}

#[test]
fn text_and_image_queries_use_the_index_model() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let m = model_dir("tiny-gelu-p14");
    let png = root().join("tests/data/nih_00000001_000.png");
    let small = root().join("tests/data/nih_small_100x80.png");
    let wx = |args: &[&str]| {
        let mut cmd = whyxray();
        cmd.current_dir(tmp.path())
            .env("WHYXRAY_CACHE", cache.path())
            .args(args);
        run(&mut cmd)
    };
    let e = wx(&[
        "embed",
        png.to_str().unwrap(),
        small.to_str().unwrap(),
        "-o",
        "feats.npy",
        "-m",
        m.to_str().unwrap(),
    ]);
    assert_eq!(e.status.code(), Some(0), "{}", stderr(&e));
    // The query text's embedding, from embed itself, scored against the rows by hand.
    let t = wx(&[
        "embed",
        "--text",
        "pleural effusion",
        "-m",
        m.to_str().unwrap(),
    ]);
    let text: Value = serde_json::from_str(stdout(&t).trim()).unwrap();
    let q: Vec<f64> = text["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let rows = std::fs::read(tmp.path().join("feats.npy")).unwrap();
    let data: Vec<f64> = rows[128..]
        .chunks_exact(4)
        .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
        .collect();
    let cos = |r: &[f64]| {
        let dot: f64 = r.iter().zip(&q).map(|(a, b)| a * b).sum();
        dot / (r.iter().map(|a| a * a).sum::<f64>().sqrt()
            * q.iter().map(|a| a * a).sum::<f64>().sqrt())
    };
    let want: Vec<f64> = data.chunks_exact(32).map(cos).collect();
    // No -m: the model comes from the index's record. The second run reads the text cache.
    for _ in 0..2 {
        let s = wx(&[
            "search",
            "--index",
            "feats.npy",
            "pleural effusion",
            "--format",
            "jsonl",
            "-v",
        ]);
        assert_eq!(s.status.code(), Some(0), "{}", stderr(&s));
        let hits: Vec<Value> = stdout(&s)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(hits.len(), 2);
        for h in &hits {
            let row = usize::from(h["file"].as_str().unwrap().ends_with("100x80.png"));
            assert!(
                (h["cosine"].as_f64().unwrap() - want[row]).abs() < 1e-6,
                "{h}"
            );
        }
    }
    assert!(
        std::fs::read_dir(cache.path().join("text")).is_ok(),
        "the text cache was written"
    );
    // An image query finds itself first.
    let s = wx(&[
        "search",
        "--index",
        "feats.npy",
        "--image",
        png.to_str().unwrap(),
        "-k",
        "1",
        "--format",
        "csv",
    ]);
    assert_eq!(s.status.code(), Some(0), "{}", stderr(&s));
    let line = stdout(&s).lines().nth(1).unwrap().to_string();
    assert!(
        line.contains("nih_00000001_000.png,1,") && line.contains(",1,"),
        "{line}"
    );
    // An image path as a text query says to use --image; the table lines up.
    let s = wx(&["search", "--index", "feats.npy", png.to_str().unwrap()]);
    assert_eq!(s.status.code(), Some(2));
    assert!(stderr(&s).contains("--image"), "{}", stderr(&s));
    let s = wx(&[
        "search",
        "--index",
        "feats.npy",
        "x",
        "y",
        "--format",
        "table",
    ]);
    let lines: Vec<String> = stdout(&s).lines().map(String::from).collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    let at = lines[0].find("cosine").unwrap() + "cosine".len();
    assert!(
        lines
            .iter()
            .skip(1)
            .all(|l| l.len() == at && l.is_char_boundary(at)),
        "{lines:?}"
    );
    // A long query is named; another model is refused.
    let long = "word ".repeat(90);
    let s = wx(&["search", "--index", "feats.npy", &long]);
    assert!(
        stderr(&s).contains("more than the text tower's 77"),
        "{}",
        stderr(&s)
    );
    let other = model_dir("tiny-gelu-p16-bilinear");
    let s = wx(&[
        "search",
        "--index",
        "feats.npy",
        "x",
        "-m",
        other.to_str().unwrap(),
    ]);
    assert_eq!(s.status.code(), Some(2));
    assert!(stderr(&s).contains("refusing"), "{}", stderr(&s));
    // A failed image query is its own row; the others are answered.
    std::fs::write(tmp.path().join("bad.png"), b"nope").unwrap();
    let s = wx(&[
        "search",
        "--index",
        "feats.npy",
        "--image",
        "bad.png",
        "x",
        "--format",
        "jsonl",
    ]);
    assert_eq!(s.status.code(), Some(1), "{}", stderr(&s));
    let rows: Vec<Value> = stdout(&s)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.iter().filter(|r| r["query"] == "x").count(), 2);
    assert!(rows
        .iter()
        .any(|r| r["query"] == "bad.png" && r["error"].is_string()));
}
