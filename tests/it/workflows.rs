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
