//! `whyxray eval --group-by` through the executable, against scikit-learn on each group's
//! subset with the bootstrap replicated bit for bit (tests/fixtures/eval/make_groups_reference.py).

use crate::support::*;
use serde_json::Value;

fn reference() -> Value {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/eval/groups_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn eval_json(extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut cmd = whyxray();
    cmd.current_dir(root().join("tests/fixtures/eval")).args([
        "eval",
        "--truth",
        "truth_groups.csv",
        "--scores",
        "scores_groups.csv",
        "--bootstrap",
        "200",
        "--seed",
        "4242",
        "--json",
        "-",
    ]);
    let out = run(cmd.args(extra));
    let v = serde_json::from_str(&stdout(&out)).unwrap_or(Value::Null);
    (out.status.code(), v, stderr(&out))
}

fn close(got: &Value, want: &Value, what: &str) {
    match (got.as_f64(), want.as_f64()) {
        (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-9, "{what}: {g} vs {w}"),
        _ => assert!(got.is_null() && want.is_null(), "{what}: {got} vs {want}"),
    }
}

fn same_interval(got: &Value, want: &Value, what: &str) {
    if want.is_null() {
        assert!(got["low"].is_null(), "{what}: {got}");
        return;
    }
    close(&got["low"], &want["low"], &format!("{what} low"));
    close(&got["high"], &want["high"], &format!("{what} high"));
    assert_eq!(got["reps_used"], want["reps_used"], "{what}");
}

/// A group's metric in our report, by the reference's name (`auroc:<class>` is per class).
fn metric<'a>(group: &'a Value, name: &str) -> &'a Value {
    match name.strip_prefix("auroc:") {
        Some(class) => {
            let per = group["per_class"].as_array().unwrap();
            &per.iter().find(|c| c["class"] == class).unwrap()["auroc"]
        }
        None => &group[name],
    }
}

fn check_groups(report: &Value, r: &Value) {
    assert_eq!(report["group_by"], serde_json::json!(["site"]));
    let groups = report["groups"].as_object().unwrap();
    assert_eq!(groups.keys().collect::<Vec<_>>(), ["A", "B", "C"]);
    for (key, want) in r["groups"].as_object().unwrap() {
        let got = &groups[key];
        assert_eq!(got["n"], want["n"], "{key}");
        assert_eq!(got["values"]["site"], *key);
        assert_eq!(got["confusion"]["matrix"], want["confusion"], "{key}");
        let support: Vec<&Value> = got["per_class"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["support"])
            .collect();
        assert_eq!(
            support,
            want["support"]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            "{key}"
        );
        for (name, value) in want["value"].as_object().unwrap() {
            let what = format!("{key} {name}");
            close(&metric(got, name)["value"], value, &what);
            same_interval(metric(got, name), &want["interval"][name], &what);
        }
    }
    let across = report["across_groups"].as_object().unwrap();
    assert_eq!(across.len(), r["across"].as_object().unwrap().len());
    for (name, want) in r["across"].as_object().unwrap() {
        let got = &across[name];
        for side in ["worst", "best"] {
            assert_eq!(got[side]["group"], want[side]["group"], "{name} {side}");
            close(&got[side]["value"], &want[side]["value"], name);
        }
        close(&got["gap"]["value"], &want["gap"], &format!("{name} gap"));
        same_interval(&got["gap"], &want["gap_interval"], &format!("{name} gap"));
        assert_eq!(got["undefined_in"], want["undefined_in"], "{name}");
    }
    assert_eq!(report["no_group"], r["no_group"]);
}

#[test]
fn per_group_metrics_and_gaps_match_scikit_learn() {
    let r = reference();
    let (code, report, err) = eval_json(&["--group-by", "site"]);
    // A truth file was never scored: exit 1, as without groups.
    assert_eq!(code, Some(1), "{err}");
    check_groups(&report, &r);
    // Site C lacks a class: its AUROC is undefined there, said, not a crash.
    assert!(report["groups"]["C"]["per_class"][3]["auroc"]["value"].is_null());
    assert_eq!(
        report["across_groups"]["auroc:edema"]["undefined_in"],
        serde_json::json!(["C"])
    );
    assert!(
        err.contains("3 evaluated files have no value for --group-by site"),
        "{err}"
    );
    // The overall report is unchanged by grouping.
    let (_, plain, _) = eval_json(&[]);
    for k in [
        "accuracy",
        "balanced_accuracy",
        "macro_auroc",
        "confusion",
        "n",
    ] {
        assert_eq!(report[k], plain[k], "{k}");
    }
    assert!(plain.get("groups").is_none());
}

#[test]
fn groups_from_a_file_and_crossed_columns() {
    let r = reference();
    let (code, report, err) = eval_json(&["--group-by", "site", "--groups", "groups_site.csv"]);
    assert_eq!(code, Some(1), "{err}");
    check_groups(&report, &r);
    let (_, crossed, err) = eval_json(&["--group-by", "site", "--group-by", "sex"]);
    let groups = crossed["groups"].as_object().unwrap();
    assert_eq!(groups.len(), 6, "{err}");
    for (key, n) in r["pairs_by_site_sex"].as_object().unwrap() {
        assert_eq!(groups[key]["n"], *n, "{key}");
        let (site, sex) = key.split_once(" / ").unwrap();
        assert_eq!(groups[key]["values"]["site"], site);
        assert_eq!(groups[key]["values"]["sex"], sex);
    }
    // Reproducible for a seed.
    let (_, again, _) = eval_json(&["--group-by", "site", "--group-by", "sex"]);
    assert_eq!(crossed, again);
}

#[test]
fn group_errors_and_the_table() {
    let (code, _, err) = eval_json(&["--group-by", "ward"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--group-by ward") && err.contains("no such column"),
        "{err}"
    );
    let mut cmd = whyxray();
    cmd.current_dir(root().join("tests/fixtures/eval")).args([
        "eval",
        "--truth",
        "truth_groups.csv",
        "--scores",
        "scores_groups.csv",
        "--bootstrap",
        "50",
        "--group-by",
        "site",
    ]);
    let out = run(&mut cmd);
    let table = stdout(&out);
    assert!(table.contains("by site (3 groups"), "{table}");
    assert!(table.contains("across groups"), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("auroc:edema")),
        "{table}"
    );
}
