//! Research workflows through the executable: prompt ensembles and multi-label scoring against
//! open_clip (tests/fixtures/make_ensemble_reference.py), provenance records, `eval` and `probe`.

use crate::support::*;
use serde_json::Value;

fn ensemble_reference() -> Value {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/expected/ensemble.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ensembles_and_multilabel_match_open_clip() {
    let r = ensemble_reference();
    let classes = strings(&r["classes"]).join(",");
    let images = strings(&r["images"]);
    let mut worst = 0f32;
    for (model, results) in r["models"].as_object().unwrap() {
        for (key, want) in results.as_object().unwrap() {
            let (mode, rule) = key.split_once('/').unwrap();
            let mut cmd = whyxray();
            cmd.current_dir(root()).arg("classify").args(&images);
            cmd.args([
                "--labels",
                &classes,
                "--ensemble",
                rule,
                "--format",
                "jsonl",
                "-m",
            ]);
            cmd.arg(model_dir(model));
            for t in strings(&r["templates"]) {
                cmd.args(["--template", &t]);
            }
            if mode == "multilabel" {
                cmd.arg("--multilabel");
                for t in strings(&r["negative_templates"]) {
                    cmd.args(["--negative-template", &t]);
                }
            }
            let out = run(&mut cmd);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            for (line, want_row) in stdout(&out).lines().zip(matrix(want)) {
                let row: Value = serde_json::from_str(line).unwrap();
                assert_eq!(
                    row["multilabel"].as_bool(),
                    (mode == "multilabel").then_some(true)
                );
                let got: Vec<f32> = strings(&r["classes"])
                    .iter()
                    .map(|c| row["scores"][c].as_f64().unwrap() as f32)
                    .collect();
                let diff = max_abs_diff(&got, &want_row);
                worst = worst.max(diff);
                assert!(diff <= 1e-4, "{model} {key}: {got:?} vs {want_row:?}");
            }
        }
    }
    eprintln!("ensembles/multilabel vs open_clip: max |diff| {worst:e}");
}

#[test]
fn a_prompts_file_gives_the_same_as_templates_and_meta_records_the_run() {
    let r = ensemble_reference();
    let tmp = tempfile::tempdir().unwrap();
    let classes = strings(&r["classes"]);
    let templates = strings(&r["templates"]);
    let prompts: serde_json::Map<String, Value> = classes
        .iter()
        .map(|c| {
            let p: Vec<String> = templates.iter().map(|t| t.replace("{}", c)).collect();
            (c.clone(), serde_json::json!(p))
        })
        .collect();
    let file = tmp.path().join("prompts.json");
    std::fs::write(&file, Value::Object(prompts).to_string()).unwrap();
    let out_path = tmp.path().join("scores.csv");
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .arg("classify")
        .args(strings(&r["images"]));
    cmd.arg("--prompts")
        .arg(&file)
        .arg("-o")
        .arg(&out_path)
        .arg("-m");
    cmd.arg(model_dir("tiny-gelu-p14"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&out_path).unwrap();
    let want = matrix(&r["models"]["tiny-gelu-p14"]["single/mean-embedding"]);
    for (line, want_row) in text.lines().skip(1).zip(want) {
        let got: Vec<f32> = line
            .split(',')
            .skip(1)
            .take(3)
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(
            max_abs_diff(&got, &want_row) <= 1e-4,
            "{got:?} vs {want_row:?}"
        );
    }
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("scores.csv.meta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["command"], "classify");
    assert_eq!(meta["whyxray"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["classify"]["ensemble"], "mean-embedding");
    assert_eq!(
        meta["classify"]["classes"][1]["pos"][0],
        "a chest x-ray showing pleural effusion"
    );
    assert_eq!(meta["preprocess"]["interpolation"], "bicubic");
    assert_eq!(meta["decode"]["window"], "auto");
    assert_eq!(meta["finished"]["scored"], 3);
}

fn eval(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = whyxray();
    cmd.current_dir(root().join("tests/fixtures/eval"))
        .arg("eval")
        .args(args);
    let out = run(&mut cmd);
    (out.status.code(), stdout(&out), stderr(&out))
}

fn close(got: &Value, want: &Value, what: &str) {
    match (got.as_f64(), want.as_f64()) {
        (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-9, "{what}: {g} vs {w}"),
        _ => assert_eq!(got, want, "{what}"),
    }
}

/// `{"value", "low", "high", "reps_used"}` against a value and a reference interval.
fn close_estimate(got: &Value, value: &Value, interval: &Value, what: &str) {
    close(&got["value"], value, what);
    close(&got["low"], &interval["low"], what);
    close(&got["high"], &interval["high"], what);
    assert_eq!(got["reps_used"], interval["reps_used"], "{what}");
}

fn metrics_reference() -> Value {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/eval/metrics_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn eval_single_label_matches_scikit_learn_and_reports_unmatched_files() {
    let (code, out, err) = eval(&[
        "--truth",
        "truth_single.csv",
        "--scores",
        "scores_single.csv",
        "--bootstrap",
        "200",
        "--seed",
        "12345",
        "--json",
        "-",
    ]);
    // A truth file that was never scored and one whose image failed: exit 1, both named.
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("never_scored.png") && err.contains("broken.png"),
        "{err}"
    );
    let r: Value = serde_json::from_str(&out).unwrap();
    let reference = metrics_reference();
    let want = &reference["cases"][0]["expected"];
    assert_eq!(r["n"], 300);
    for key in ["accuracy", "balanced_accuracy", "macro_auroc"] {
        close_estimate(&r[key], &want[key], &want["bootstrap"][key], key);
    }
    for c in 0..4 {
        let what = format!("class {c} AUROC");
        close_estimate(
            &r["per_class"][c]["auroc"],
            &want["auroc"][c],
            &want["bootstrap"]["auroc"][c],
            &what,
        );
    }
    assert_eq!(r["confusion"]["matrix"], want["confusion"]);
    assert_eq!(
        r["unmatched"]["truth_not_scored"],
        serde_json::json!(["never_scored.png"])
    );
    assert_eq!(
        r["unmatched"]["scored_not_in_truth"],
        serde_json::json!(["/data/cxr/not_in_truth.png"])
    );
    assert_eq!(r["unmatched"]["failed"][0]["file"], "broken.png");

    // The same seed gives the same intervals; the table is the default output.
    let (_, table, _) = eval(&[
        "--truth",
        "truth_single.csv",
        "--scores",
        "scores_single.csv",
        "--bootstrap",
        "200",
        "--seed",
        "12345",
    ]);
    assert!(
        table.contains("balanced accuracy  0.6584  [0.6047, 0.7063]"),
        "{table}"
    );
}

#[test]
fn eval_multi_label_matches_scikit_learn() {
    let (code, out, err) = eval(&[
        "--truth",
        "truth_multi.csv",
        "--scores",
        "scores_multi.jsonl",
        "--bootstrap",
        "200",
        "--seed",
        "99",
        "--json",
        "-",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let want = &metrics_reference()["multilabel"];
    assert_eq!(r["mode"], "multi-label");
    close_estimate(
        &r["macro_auroc"],
        &want["macro_auroc"],
        &want["macro_interval"],
        "macro",
    );
    for f in 0..3 {
        let got = &r["per_finding"][f];
        assert_eq!(got["positives"], want["positives"][f]);
        close_estimate(
            &got["auroc"],
            &want["auroc"][f],
            &want["auroc_interval"][f],
            "finding",
        );
    }
}

#[test]
fn eval_refuses_bad_truth_files_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let scores = root().join("tests/fixtures/eval/scores_single.csv");
    let cases = [
        (
            "name,label\nimg0000.png,edema\n",
            "first column must be `file`",
        ),
        ("file\nimg0000.png\n", "needs `file,label`"),
        (
            "file,label\nimg0000.png,fracture\n",
            "\"fracture\" is not one of the scored classes",
        ),
        (
            "file,label\nimg0000.png,edema\nimg0000.png,edema\n",
            "listed twice (first on line 2)",
        ),
        ("file,edema\nimg0000.png,maybe\n", "\"maybe\" is not 0 or 1"),
        (
            "file,label\nsomething_else.png,edema\n",
            "no truth file was scored",
        ),
    ];
    for (i, (csv, needle)) in cases.iter().enumerate() {
        let truth = tmp.path().join(format!("t{i}.csv"));
        std::fs::write(&truth, csv).unwrap();
        let (code, out, err) = eval(&[
            "--truth",
            truth.to_str().unwrap(),
            "--scores",
            scores.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "{csv}: {err}");
        assert!(err.contains(needle), "{csv}: {err}");
        assert!(out.is_empty());
    }
    let dup_scores = tmp.path().join("dup.csv");
    std::fs::write(
        &dup_scores,
        "file,a,b,error\nx.png,0.5,0.5,\nx.png,0.1,0.9,\n",
    )
    .unwrap();
    let truth = tmp.path().join("t.csv");
    std::fs::write(&truth, "file,label\nx.png,a\n").unwrap();
    let (code, _, err) = eval(&[
        "--truth",
        truth.to_str().unwrap(),
        "--scores",
        dup_scores.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("scored twice"), "{err}");
}

#[test]
fn eval_can_score_the_images_itself_and_keep_the_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let truth = tmp.path().join("truth.csv");
    std::fs::write(
        &truth,
        "file,label\nnih_00000001_000.png,enlarged heart\nnih_gray_q90.jpg,pleural effusion\nnih_tinted_rgb.png,pneumothorax\n",
    )
    .unwrap();
    let kept = tmp.path().join("scores.csv");
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .arg("eval")
        .arg("--truth")
        .arg(&truth);
    cmd.args([
        "tests/data/nih_00000001_000.png",
        "tests/data/nih_gray_q90.jpg",
        "tests/data/nih_tinted_rgb.png",
    ]);
    cmd.args([
        "--labels",
        "enlarged heart,pleural effusion,pneumothorax",
        "--json",
        "-",
        "-o",
    ]);
    cmd.arg(&kept).arg("-m").arg(model_dir("tiny-gelu-p14"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let now: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(now["n"], 3);
    let (code, later, _) = eval(&[
        "--truth",
        truth.to_str().unwrap(),
        "--scores",
        kept.to_str().unwrap(),
        "--json",
        "-",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(now, serde_json::from_str::<Value>(&later).unwrap());
    assert!(tmp.path().join("scores.csv.meta.json").is_file());
}
