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
            let text = stdout(&out);
            assert_eq!(
                text.lines().count(),
                matrix(want).len(),
                "one row per image: {text}"
            );
            for (line, want_row) in text.lines().zip(matrix(want)) {
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
                // Measured max 8.6e-6 (2026-12).
                assert!(diff <= 5e-5, "{model} {key}: {got:?} vs {want_row:?}");
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
    assert_eq!(
        text.lines().count(),
        want.len() + 1,
        "a header and one row per image"
    );
    for (line, want_row) in text.lines().skip(1).zip(want) {
        let got: Vec<f32> = line
            .split(',')
            .skip(1)
            .take(3)
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(
            max_abs_diff(&got, &want_row) <= 5e-5,
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

/// eval scores the images itself (`-o` keeps the scores): the kept rows are open_clip's
/// probabilities, whole rows in input order, and the metrics equal eval's on a scores file
/// written from open_clip's probabilities (and, for accuracy, the argmax counted here).
#[test]
fn eval_can_score_the_images_itself_and_keep_the_scores() {
    let m = "tiny-gelu-p14";
    let images = [
        "nih_00000001_000.png",
        "nih_gray_q90.jpg",
        "nih_tinted_rgb.png",
    ];
    let truths = ["enlarged heart", "pleural effusion", "pneumothorax"];
    let tmp = tempfile::tempdir().unwrap();
    let truth = tmp.path().join("truth.csv");
    let mut csv = String::from("file,label\n");
    for (f, t) in images.iter().zip(truths) {
        csv += &format!("{f},{t}\n");
    }
    std::fs::write(&truth, csv).unwrap();
    let kept = tmp.path().join("scores.csv");
    let mut cmd = whyxray();
    cmd.current_dir(root())
        .arg("eval")
        .arg("--truth")
        .arg(&truth)
        .args(images.map(|f| format!("tests/data/{f}")))
        .args(["--labels", &labels(m), "--json", "-", "-o"])
        .arg(&kept)
        .arg("-m")
        .arg(model_dir(m));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let now: Value = serde_json::from_str(&stdout(&out)).unwrap();

    // The kept scores: a header, then open_clip's probabilities row by row.
    let text = std::fs::read_to_string(&kept).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), format!("file,{},error", labels(m)));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), images.len(), "{text}");
    let mut reference = format!("file,{},error\n", labels(m));
    let label_list: Vec<String> = labels(m).split(',').map(String::from).collect();
    let mut right = 0;
    for ((row, image), truth) in rows.iter().zip(images).zip(truths) {
        let got = scored_row(row, image);
        let want = expected_row(m, image);
        assert!(
            max_abs_diff(&got, &want) <= 5e-5,
            "{image}: {row} vs {want:?}"
        );
        let top = (0..want.len()).fold(0, |b, i| if want[i] > want[b] { i } else { b });
        right += usize::from(label_list[top] == truth);
        let probs: Vec<String> = want.iter().map(|p| format!("{p:e}")).collect();
        let file = row.split(',').next().unwrap();
        reference += &format!("{file},{},\n", probs.join(","));
    }
    let accuracy = right as f64 / images.len() as f64;
    assert_eq!(now["n"], 3);
    let acc = now["accuracy"]["value"].as_f64().unwrap();
    assert!(
        (acc - accuracy).abs() < 1e-12,
        "accuracy {acc} vs {accuracy}"
    );

    // The same metrics from open_clip's own probabilities, and from the kept file later.
    let open_clip = tmp.path().join("open_clip.csv");
    std::fs::write(&open_clip, reference).unwrap();
    for scores in [&open_clip, &kept] {
        let (code, later, err) = eval(&[
            "--truth",
            truth.to_str().unwrap(),
            "--scores",
            scores.to_str().unwrap(),
            "--json",
            "-",
        ]);
        assert_eq!(code, Some(0), "{err}");
        let later: Value = serde_json::from_str(&later).unwrap();
        json_close(&now, &later, 1e-6, "eval");
    }
    assert!(tmp.path().join("scores.csv.meta.json").is_file());
}

/// Equal JSON, numbers within `tol`.
fn json_close(a: &Value, b: &Value, tol: f64, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= tol, "{at}: {x} vs {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                json_close(x, y, tol, &format!("{at}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(x), keys(y), "{at}: keys");
            for (k, v) in x {
                json_close(v, &y[k], tol, &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// Writes one probe-reference split as an `embed` jsonl output with its meta file, and the
/// truth CSV; returns the embeddings path.
fn write_split(
    dir: &std::path::Path,
    case: &Value,
    split: &str,
    model_id: &str,
) -> std::path::PathBuf {
    let dim = case["dim"].as_u64().unwrap() as usize;
    let x: Vec<f64> = serde_json::from_value(case[format!("x_{split}")].clone()).unwrap();
    let y: Vec<usize> = serde_json::from_value(case[format!("y_{split}")].clone()).unwrap();
    let mut jsonl = String::new();
    let mut truth = String::from("file,label\n");
    for (i, row) in x.chunks(dim).enumerate() {
        let file = format!("/data/{split}/img{i:03}.png");
        jsonl += &serde_json::json!({ "file": file, "embedding": row }).to_string();
        jsonl.push('\n');
        truth += &format!("img{i:03}.png,class {}\n", y[i]);
    }
    let path = dir.join(format!("{split}.jsonl"));
    std::fs::write(&path, jsonl).unwrap();
    std::fs::write(dir.join(format!("{split}.csv")), truth).unwrap();
    let meta =
        serde_json::json!({ "model": { "id": model_id, "revision": "abc123", "embed_dim": dim } });
    std::fs::write(
        dir.join(format!("{split}.jsonl.meta.json")),
        meta.to_string(),
    )
    .unwrap();
    path
}

fn whyxray_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = whyxray();
    cmd.current_dir(dir).args(args);
    run(&mut cmd)
}

#[test]
fn probe_fit_and_predict_match_scikit_learn_and_refuse_another_model() {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/probe/probe_reference.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let case = &reference["cases"][0];
    assert_eq!(case["name"], "multiclass");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write_split(d, case, "train", "yyupenn/whyxrayclip");
    write_split(d, case, "test", "yyupenn/whyxrayclip");
    let out = whyxray_in(
        d,
        &[
            "probe",
            "fit",
            "--embeddings",
            "train.jsonl",
            "--truth",
            "train.csv",
            "-o",
            "probe.json",
            "--tol",
            "1e-12",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let probe: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("probe.json")).unwrap()).unwrap();
    // LogisticRegressionCV: the same C from the same folds and accuracies.
    assert_eq!(probe["c"], case["cv_best_c"]);
    assert_eq!(probe["cv"]["fold_accuracy"], case["cv_scores"]);
    assert_eq!(
        probe["classes"],
        serde_json::json!(["class 0", "class 1", "class 2"])
    );
    assert_eq!(probe["model"]["id"], "yyupenn/whyxrayclip");
    let coef: Vec<f64> = probe["coef"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .collect();
    let want: Vec<f64> = serde_json::from_value(case["cv_coef"].clone()).unwrap();
    assert_eq!(coef.len(), want.len(), "coefficient count");
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    let worst = coef
        .iter()
        .zip(&want)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()))
        / scale;
    assert!(
        worst < 1e-6, // measured 1.0e-7 (2026-12)
        "coefficients: max diff / max |coef| = {worst:e}"
    );

    let out = whyxray_in(
        d,
        &[
            "probe",
            "predict",
            "--probe",
            "probe.json",
            "--embeddings",
            "test.jsonl",
            "--format",
            "csv",
            "-o",
            "pred.csv",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let proba: Vec<f64> = serde_json::from_value(case["cv_proba_test"].clone()).unwrap();
    let pred = std::fs::read_to_string(d.join("pred.csv")).unwrap();
    let (mut agree, mut n, mut worst_p) = (0, 0, 0f64);
    for (line, want) in pred.lines().skip(1).zip(proba.chunks(3)) {
        let got: Vec<f64> = line
            .split(',')
            .skip(1)
            .take(3)
            .map(|v| v.parse().unwrap())
            .collect();
        worst_p = got
            .iter()
            .zip(want)
            .fold(worst_p, |m, (a, b)| m.max((a - b).abs()));
        let arg = |v: &[f64]| (0..3).fold(0, |b, i| if v[i] > v[b] { i } else { b });
        agree += usize::from(arg(&got) == arg(want));
        n += 1;
    }
    assert_eq!(n, 120);
    assert!(agree * 100 >= 99 * n, "{agree}/{n} predictions agree");
    // Measured 7.2e-8 (2026-12).
    assert!(worst_p < 1e-6, "probabilities differ by {worst_p:e}");
    eprintln!("probe vs sklearn: coef rel {worst:e}, proba {worst_p:e}, agree {agree}/{n}");

    // The predictions are a classify-style output: eval reads them.
    let out = whyxray_in(
        d,
        &[
            "eval",
            "--truth",
            "test.csv",
            "--scores",
            "pred.csv",
            "--bootstrap",
            "0",
            "--json",
            "-",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(r["n"], 120);

    // Embeddings of another model, or without a meta file to tell, are refused.
    write_split(d, case, "test", "openai/clip-vit-large-patch14");
    let predict = [
        "probe",
        "predict",
        "--probe",
        "probe.json",
        "--embeddings",
        "test.jsonl",
    ];
    for needle in ["refusing to apply it", "cannot tell which model"] {
        let out = whyxray_in(d, &predict);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
        let _ = std::fs::remove_file(d.join("test.jsonl.meta.json"));
    }
}

/// `probe predict --format csv` output against probe_images_reference.json: one row per image
/// in order, each class's probability within 1e-6 of scikit-learn's.
fn same_as_scikit_learn(text: &str, reference: &Value) {
    let images = strings(&reference["images"]);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let cols: Vec<usize> = strings(&reference["classes"])
        .iter()
        .map(|c| header.iter().position(|h| h == c).unwrap())
        .collect();
    let want = matrix(&reference["proba"]);
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), images.len(), "{text}");
    let mut worst = 0f32;
    for ((row, image), want) in rows.iter().zip(&images).zip(&want) {
        let fields: Vec<&str> = row.split(',').collect();
        assert!(fields[0].ends_with(image.as_str()), "{row}");
        let got: Vec<f32> = cols.iter().map(|&c| fields[c].parse().unwrap()).collect();
        worst = worst.max(max_abs_diff(&got, want));
    }
    // Embeddings within 1-cos 1e-9 of open_clip's, a converged fit: measured 1.2e-7 (2026-12).
    assert!(
        worst <= 1e-6,
        "probabilities differ from scikit-learn by {worst:e}"
    );
}

/// The probe embeds the images itself, then fits with a fixed C: its predictions equal
/// scikit-learn's on open_clip's embeddings of the same images
/// (tests/fixtures/probe/make_probe_images_reference.py), whole rows, in input order.
#[test]
fn probe_can_embed_the_images_itself() {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/probe/probe_images_reference.json"))
            .unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let images = strings(&reference["images"]);
    let labels = strings(&reference["labels"]);
    let tmp = tempfile::tempdir().unwrap();
    let truth = tmp.path().join("truth.csv");
    let mut csv = String::from("file,label\n");
    for (f, l) in images.iter().zip(&labels) {
        csv += &format!("{f},{l}\n");
    }
    std::fs::write(&truth, csv).unwrap();
    let probe = tmp.path().join("probe.json");
    // Embeddings made on the spot live in a private temporary directory, removed afterwards.
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = whyxray();
    cmd.current_dir(root().join("tests/data"))
        .env("TMPDIR", scratch.path())
        .args(["probe", "fit", "--c", "1", "--tol", "1e-12"])
        .args(&images);
    cmd.arg("--truth")
        .arg(&truth)
        .arg("-o")
        .arg(&probe)
        .arg("-m")
        .arg(model_dir("tiny-gelu-p14"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    let mut cmd = whyxray();
    cmd.current_dir(root().join("tests/data"))
        .args(["probe", "predict", "--format", "csv"])
        .args(&images);
    cmd.arg("--probe")
        .arg(&probe)
        .arg("-m")
        .arg(model_dir("tiny-gelu-p14"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    same_as_scikit_learn(&stdout(&out), &reference);

    // The same from an npy export and its paths sidecar, embedded first by `embed`.
    let npy = tmp.path().join("feats.npy");
    let mut cmd = whyxray();
    cmd.current_dir(root().join("tests/data"))
        .arg("embed")
        .args(&images)
        .arg("-o")
        .arg(&npy)
        .arg("-m")
        .arg(model_dir("tiny-gelu-p14"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fit = [
        "probe",
        "fit",
        "--embeddings",
        "feats.npy",
        "--truth",
        "truth.csv",
        "--c",
        "1",
        "--tol",
        "1e-12",
        "-o",
        "from_npy.json",
    ];
    let out = whyxray_in(tmp.path(), &fit);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let predict = [
        "probe",
        "predict",
        "--embeddings",
        "feats.npy",
        "--probe",
        "from_npy.json",
        "--format",
        "csv",
    ];
    let out = whyxray_in(tmp.path(), &predict);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    same_as_scikit_learn(&stdout(&out), &reference);
    // Another model's images are refused.
    let mut cmd = whyxray();
    cmd.current_dir(root().join("tests/data"))
        .args(["probe", "predict"])
        .arg(&images[0]);
    cmd.arg("--probe")
        .arg(&probe)
        .arg("-m")
        .arg(model_dir("tiny-gelu-p16-bilinear"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
