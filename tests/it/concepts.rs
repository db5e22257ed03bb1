//! `whyxray concepts` and concept probes through the executable: concept cosines against
//! open_clip (tests/fixtures/make_concepts_reference.py), their statistics against NumPy, the
//! bank file's forms, and a concept bottleneck's explanations checked by hand.

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::Output;

fn reference() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/expected/concepts.json")).unwrap(),
    )
    .unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn wx(cwd: &Path, cache: &Path, args: &[&str]) -> Output {
    let mut cmd = whyxray();
    cmd.current_dir(cwd).env("WHYXRAY_CACHE", cache).args(args);
    run(&mut cmd)
}

/// The reference's concepts as a bank file, and the paths of its images.
fn setup(dir: &Path, r: &Value) -> Vec<String> {
    std::fs::write(
        dir.join("bank.txt"),
        strings(&r["concepts"]).join("\n") + "\n",
    )
    .unwrap();
    strings(&r["images"])
        .iter()
        .map(|i| root().join(i).display().to_string())
        .collect()
}

fn csv_matrix(text: &str) -> Vec<Vec<f64>> {
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f[1..f.len() - 1]
                .iter()
                .map(|v| v.parse().unwrap())
                .collect()
        })
        .collect()
}

fn close_matrix(got: &[Vec<f64>], want: &Value, tol: f64, what: &str) -> f64 {
    let want: Vec<Vec<f64>> = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(got.len(), want.len(), "{what}");
    let mut worst = 0f64;
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.len(), w.len(), "{what}");
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst <= tol, "{what}: max |difference| {worst}");
    worst
}

#[test]
fn concept_cosines_and_statistics_match_open_clip_and_numpy() {
    let r = reference();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let images = setup(tmp.path(), &r);
    let templates = strings(&r["templates"]);
    for model in ["tiny-gelu-p14", "tiny-quickgelu-p32-squash"] {
        let want = &r["models"][model];
        let m = model_dir(model).display().to_string();
        let mut args: Vec<&str> = vec!["concepts"];
        args.extend(images.iter().map(String::as_str));
        args.extend(["--bank", "bank.txt", "-m", &m]);
        let base = args.clone();
        args.extend(["--format", "csv", "--write-stats", "stats.json"]);
        let out = wx(tmp.path(), cache.path(), &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        // The cosines inherit the float32 noise of both embeddings (each within 1 - cos 1e-10 of
        // open_clip's): 1.0e-6 and 1.6e-6 at most measured, checked at 4e-6.
        let d = close_matrix(&csv_matrix(&stdout(&out)), &want["plain"], 4e-6, model);
        println!("{model}: concept cosines within {d:.1e} of open_clip");
        // --write-stats: numpy's mean and std (ddof=0) of the same cosines.
        let stats: Value =
            serde_json::from_str(&std::fs::read_to_string(tmp.path().join("stats.json")).unwrap())
                .unwrap();
        assert_eq!(stats["n"], 5);
        close_matrix(
            &[serde_json::from_value(stats["mean"].clone()).unwrap()],
            &Value::Array(vec![want["mean"].clone()]),
            2e-6,
            "mean",
        );
        close_matrix(
            &[serde_json::from_value(stats["std"].clone()).unwrap()],
            &Value::Array(vec![want["std"].clone()]),
            2e-6,
            "std",
        );
        // Templates: open_clip's build_zero_shot_classifier over the concept's prompts.
        let mut targs = base.clone();
        targs.extend(["--format", "csv"]);
        for t in &templates {
            targs.extend(["--template", t.as_str()]);
        }
        let out = wx(tmp.path(), cache.path(), &targs);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        close_matrix(
            &csv_matrix(&stdout(&out)),
            &want["templates"],
            4e-6,
            &format!("{model} templates"),
        );
        // --top ranks by the z-score against the reference statistics.
        let mut jargs = base.clone();
        jargs.extend([
            "--format",
            "jsonl",
            "--top",
            "1",
            "--reference-stats",
            "stats.json",
        ]);
        let out = wx(tmp.path(), cache.path(), &jargs);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let z: Vec<Vec<f64>> = serde_json::from_value(want["z"].clone()).unwrap();
        let concepts = strings(&r["concepts"]);
        for (row, zi) in stdout(&out).lines().zip(&z) {
            let v: Value = serde_json::from_str(row).unwrap();
            let best = (0..zi.len()).fold(0, |b, j| if zi[j] > zi[b] { j } else { b });
            let top = &v["top_concepts"][0];
            assert_eq!(top["concept"], concepts[best].as_str(), "{row}");
            assert!(
                (top["z"].as_f64().unwrap() - zi[best]).abs() < 1e-4,
                "{row}"
            );
        }
    }
}

#[test]
fn bank_files_outputs_and_the_text_cache() {
    let r = reference();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let images = setup(tmp.path(), &r);
    let concepts = strings(&r["concepts"]);
    let m = model_dir("tiny-gelu-p14").display().to_string();
    // BOM, CRLF, comments, blank lines and a repeat: the same bank.
    let messy = format!(
        "\u{feff}# a comment\r\n\r\n{}\r\n{}\r\n",
        concepts.join("\r\n"),
        concepts[2]
    );
    std::fs::write(tmp.path().join("messy.txt"), messy).unwrap();
    let run_bank = |bank: &str, extra: &[&str]| {
        let mut args = vec![
            "concepts",
            images[0].as_str(),
            images[1].as_str(),
            "--bank",
            bank,
            "-m",
            &m,
        ];
        args.extend(extra);
        wx(tmp.path(), cache.path(), &args)
    };
    let clean = run_bank("bank.txt", &["--format", "csv"]);
    let messy = run_bank("messy.txt", &["--format", "csv"]);
    assert_eq!(stdout(&clean), stdout(&messy));
    assert!(
        stderr(&messy).contains("more than once") && stderr(&messy).contains(&concepts[2]),
        "{}",
        stderr(&messy)
    );
    assert!(stdout(&clean).starts_with(&format!("file,{},error\n", concepts.join(","))));
    // The text cache holds one embedding per concept; a second run gives the same rows.
    let cached = std::fs::read_dir(cache.path().join("text"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(std::fs::read_dir(cached).unwrap().count(), concepts.len());
    assert_eq!(
        stdout(&run_bank("bank.txt", &["--format", "csv"])),
        stdout(&clean)
    );
    // An empty bank, and statistics of another bank, are refused.
    std::fs::write(tmp.path().join("empty.txt"), "# only comments\n\n").unwrap();
    let out = run_bank("empty.txt", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no concepts"), "{}", stderr(&out));
    let out = run_bank("bank.txt", &["--write-stats", "s.json", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::write(tmp.path().join("other.txt"), "a chest tube\n").unwrap();
    let out = run_bank("other.txt", &["--reference-stats", "s.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("another concept bank"),
        "{}",
        stderr(&out)
    );
    // npy: [images, concepts] with the paths sidecar and a record naming the bank.
    let out = run_bank("bank.txt", &["-o", "c.npy"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bytes = std::fs::read(tmp.path().join("c.npy")).unwrap();
    let header = String::from_utf8_lossy(&bytes[10..128]).to_string();
    assert!(
        header.contains(&format!("'shape': (2, {})", concepts.len())),
        "{header}"
    );
    assert!(tmp.path().join("c.npy.paths.tsv").is_file());
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("c.npy.meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["concepts"]["bank"]["count"], concepts.len());
    assert_eq!(
        meta["concepts"]["bank"]["sha256"].as_str().unwrap().len(),
        64
    );
    assert!(meta["model"]["identity"]["weights_sha256"].is_string());
    // --resume continues a csv and refuses another bank.
    let out = run_bank("bank.txt", &["-o", "r.csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let full = std::fs::read_to_string(tmp.path().join("r.csv")).unwrap();
    let cut: String = full.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(tmp.path().join("r.csv"), &cut).unwrap();
    let out = run_bank("bank.txt", &["-o", "r.csv", "--resume"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("r.csv")).unwrap(),
        full
    );
}

/// A concept probe on 36 embedded images: fit (L1), explain, predict with reasons; then a
/// planted weight checked by hand.
#[test]
fn a_concept_bottleneck_explains_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sources = [
        "nih_00000001_000.png",
        "nih_gray_q90.jpg",
        "nih_tinted_rgb.png",
    ];
    let classes = ["cardio", "normal", "effusion"];
    let mut truth = String::from("file,label\n");
    for i in 0..12 {
        for (s, c) in sources.iter().zip(classes) {
            let name = format!("{c}{i:02}.{}", s.rsplit('.').next().unwrap());
            std::fs::copy(root().join("tests/data").join(s), d.join(&name)).unwrap();
            truth += &format!("{name},{c}\n");
        }
    }
    std::fs::write(d.join("truth.csv"), truth).unwrap();
    let bank = root()
        .join("assets/concepts_chest_xray.txt")
        .display()
        .to_string();
    let m = model_dir("tiny-gelu-p14").display().to_string();
    let out = wx(
        d,
        cache.path(),
        &["embed", ".", "-o", "f.npy", "-m", &m, "-q"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fit = |extra: &[&str]| {
        let mut args = vec![
            "probe",
            "fit",
            "--embeddings",
            "f.npy",
            "--truth",
            "truth.csv",
            "--features",
            "concepts",
            "--bank",
            bank.as_str(),
        ];
        args.extend(extra);
        wx(d, cache.path(), &args)
    };
    let out = fit(&["--penalty", "l1", "--c", "1", "-o", "p.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let probe: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("p.json")).unwrap()).unwrap();
    assert_eq!(probe["features"], "concepts");
    assert_eq!(probe["penalty"], "l1");
    let nonzero = probe["coef"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .filter(|w| w.as_f64() != Some(0.0))
        .count();
    assert!(nonzero > 0 && nonzero < 20, "L1 is sparse: {nonzero}");
    // Another model's statistics, or a bank the flag does not go with, are refused.
    let out = wx(
        d,
        cache.path(),
        &[
            "probe",
            "fit",
            "--embeddings",
            "f.npy",
            "--truth",
            "truth.csv",
            "--bank",
            &bank,
            "-o",
            "q.json",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--features concepts"),
        "{}",
        stderr(&out)
    );

    // Plant one known weight: class "effusion" (index 1 of the sorted classes) on concept 5.
    let concepts = strings(&probe["concepts"]["bank"]["concepts"]);
    let mut planted = probe.clone();
    let k = concepts.len();
    let mut coef = vec![vec![0.0; k]; 3];
    coef[1][5] = 2.5;
    coef[0][7] = -1.5;
    planted["coef"] = serde_json::json!(coef);
    planted["intercept"] = serde_json::json!([0.0, 0.0, 0.0]);
    std::fs::write(
        d.join("planted.json"),
        serde_json::to_string(&planted).unwrap(),
    )
    .unwrap();
    std::fs::write(
        d.join("prior.json"),
        serde_json::json!({"effusion": {concepts[5].clone(): "yes", concepts[6].clone(): "no"},
                           "cardio": {concepts[7].clone(): "yes"}})
        .to_string(),
    )
    .unwrap();
    let out = wx(
        d,
        cache.path(),
        &[
            "probe",
            "explain",
            "planted.json",
            "--top",
            "3",
            "--prior",
            "prior.json",
            "--json",
            "-",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let e: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let c = &e["classes"];
    assert_eq!(c[1]["class"], "effusion");
    assert_eq!(c[1]["for"][0]["concept"], concepts[5].as_str());
    assert_eq!(c[1]["for"][0]["weight"], 2.5);
    assert_eq!(c[0]["against"][0]["concept"], concepts[7].as_str());
    assert_eq!(c[2]["nonzero"], 0);
    assert_eq!(
        c[1]["prior"],
        serde_json::json!({"answered": 2, "agree": 1, "disagree": 0, "zero": 1})
    );
    assert_eq!(c[0]["prior"]["disagree"], 1);
    assert!(c[2]["prior"]["note"].is_string(), "a class the prior lacks");
    // predict: an effusion image's reason is concept 5, contribution = 2.5 x its z-score,
    // with z from the probe's own statistics.
    let out = wx(
        d,
        cache.path(),
        &[
            "probe",
            "predict",
            "--probe",
            "planted.json",
            "--embeddings",
            "f.npy",
            "--format",
            "jsonl",
            "--top",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cos_out = wx(
        d,
        cache.path(),
        &[
            "concepts", ".", "--bank", &bank, "-m", &m, "--format", "jsonl", "-q",
        ],
    );
    let cos: Vec<Value> = stdout(&cos_out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mean = planted["concepts"]["mean"][5].as_f64().unwrap();
    let std = planted["concepts"]["std"][5].as_f64().unwrap();
    let mut checked = 0;
    for line in stdout(&out).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["top"] != "effusion" {
            continue;
        }
        let file = v["file"].as_str().unwrap();
        let row = cos.iter().find(|r| r["file"] == file).unwrap();
        let z = (row["scores"][&concepts[5]].as_f64().unwrap() - mean) / std;
        let reason = &v["reasons"][0];
        assert_eq!(reason["concept"], concepts[5].as_str());
        assert!(
            (reason["contribution"].as_f64().unwrap() - 2.5 * z).abs() < 1e-5,
            "{line}"
        );
        checked += 1;
    }
    assert!(checked > 0, "some image is predicted effusion");
    // An L2 concept probe fits too; statistics of another bank, and embeddings of another
    // model, are refused.
    let out = fit(&["--c", "1", "-o", "l2.json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::write(d.join("other.txt"), "a chest tube\n").unwrap();
    let out = wx(
        d,
        cache.path(),
        &[
            "concepts",
            ".",
            "--bank",
            "other.txt",
            "-m",
            &m,
            "--write-stats",
            "other.json",
            "-q",
            "-o",
            "o.csv",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = fit(&[
        "--c",
        "1",
        "--reference-stats",
        "other.json",
        "-o",
        "x.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("another concept bank"),
        "{}",
        stderr(&out)
    );
    let other = model_dir("tiny-gelu-p16-bilinear").display().to_string();
    let out = wx(
        d,
        cache.path(),
        &["embed", ".", "-o", "g.npy", "-m", &other, "-q"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = wx(
        d,
        cache.path(),
        &[
            "probe",
            "predict",
            "--probe",
            "l2.json",
            "--embeddings",
            "g.npy",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("refusing to apply it"),
        "{}",
        stderr(&out)
    );
    // An embedding probe has no concepts to explain.
    let out = wx(
        d,
        cache.path(),
        &[
            "probe",
            "fit",
            "--embeddings",
            "f.npy",
            "--truth",
            "truth.csv",
            "--c",
            "1",
            "-o",
            "e.json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = wx(d, cache.path(), &["probe", "explain", "e.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("needs a concept probe"),
        "{}",
        stderr(&out)
    );
}
