//! Evaluate (report): matched truth and scores -> accuracy, balanced accuracy, per-class and
//! macro AUROC and the confusion matrix (single-label), or per-finding and macro AUROC
//! (multi-label), each with a seeded 95% percentile bootstrap interval; as JSON and a table.

use super::data::{Matched, Scores, Truth};
use super::metrics::{
    accuracy, auroc, balanced_accuracy, bootstrap, confusion, macro_auroc, Interval,
};
use anyhow::{bail, Result};
use serde_json::{json, Value};

pub struct Bootstrap {
    pub reps: usize,
    pub seed: u64,
}

/// `{"value": v, "low": .., "high": .., "reps_used": ..}`, nulls where undefined.
fn estimate(
    value: Option<f64>,
    n: usize,
    b: &Bootstrap,
    stat: impl Fn(&[usize]) -> Option<f64>,
) -> Value {
    let ci: Option<Interval> = if b.reps > 0 {
        bootstrap(n, b.reps, b.seed, stat)
    } else {
        None
    };
    json!({
        "value": value,
        "low": ci.map(|c| c.low),
        "high": ci.map(|c| c.high),
        "reps_used": ci.map(|c| c.reps_used),
    })
}

pub fn evaluate(truth: &Truth, scores: &Scores, m: &Matched, b: &Bootstrap) -> Result<Value> {
    let n = m.pairs.len();
    if n == 0 {
        bail!("no truth file was scored: nothing to evaluate (check the file names in both)");
    }
    let probs = |col: usize| -> Vec<f64> {
        m.pairs
            .iter()
            .map(|&(_, s)| scores.rows[s].result.as_ref().map_or(f64::NAN, |p| p[col]))
            .collect()
    };
    let mut report = match truth {
        Truth::Single { labels, .. } => single(labels, scores, m, &probs, b)?,
        Truth::Multi {
            findings, values, ..
        } => multi(findings, values, scores, m, &probs, b)?,
    };
    report["n"] = json!(n);
    report["bootstrap"] =
        json!({ "reps": b.reps, "seed": b.seed, "interval": "95% percentile (numpy linear)" });
    report["unmatched"] = json!({
        "truth_not_scored": m.truth_not_scored,
        "scored_not_in_truth": m.scored_not_in_truth,
        "failed": m.failed.iter().map(|(f, e)| json!({"file": f, "error": e})).collect::<Vec<_>>(),
    });
    Ok(report)
}

fn single(
    labels: &[String],
    scores: &Scores,
    m: &Matched,
    probs: &dyn Fn(usize) -> Vec<f64>,
    b: &Bootstrap,
) -> Result<Value> {
    let k = scores.classes.len();
    let mut truth = Vec::with_capacity(m.pairs.len());
    for &(t, _) in &m.pairs {
        match scores.classes.iter().position(|c| *c == labels[t]) {
            Some(c) => truth.push(c),
            None => bail!(
                "truth label {:?} is not one of the scored classes {:?}",
                labels[t],
                scores.classes
            ),
        }
    }
    let cols: Vec<Vec<f64>> = (0..k).map(probs).collect();
    // The predicted class is the first highest probability, as classify's `top`.
    let pred: Vec<usize> = (0..truth.len())
        .map(|i| {
            (0..k).fold(
                0,
                |best, c| if cols[c][i] > cols[best][i] { c } else { best },
            )
        })
        .collect();
    let pick = |idx: &[usize], v: &[usize]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
    let class_auc = |c: usize, idx: &[usize]| {
        let pos: Vec<bool> = idx.iter().map(|&i| truth[i] == c).collect();
        let s: Vec<f64> = idx.iter().map(|&i| cols[c][i]).collect();
        auroc(&pos, &s)
    };
    let all: Vec<usize> = (0..truth.len()).collect();
    let n = truth.len();
    let per_class: Vec<Value> = (0..k)
        .map(|c| {
            json!({
                "class": scores.classes[c],
                "support": truth.iter().filter(|&&t| t == c).count(),
                "auroc": estimate(class_auc(c, &all), n, b, |idx| class_auc(c, idx)),
            })
        })
        .collect();
    let macro_of =
        |idx: &[usize]| macro_auroc(&(0..k).map(|c| class_auc(c, idx)).collect::<Vec<_>>());
    Ok(json!({
        "mode": "single-label",
        "classes": scores.classes,
        "accuracy": estimate(Some(accuracy(&truth, &pred)), n, b, |idx| Some(accuracy(&pick(idx, &truth), &pick(idx, &pred)))),
        "balanced_accuracy": estimate(Some(balanced_accuracy(&truth, &pred)), n, b, |idx| Some(balanced_accuracy(&pick(idx, &truth), &pick(idx, &pred)))),
        "macro_auroc": estimate(macro_of(&all), n, b, macro_of),
        "per_class": per_class,
        "confusion": { "rows": "truth", "columns": "predicted", "matrix": confusion(&truth, &pred, k) },
    }))
}

fn multi(
    findings: &[String],
    values: &[Vec<bool>],
    scores: &Scores,
    m: &Matched,
    probs: &dyn Fn(usize) -> Vec<f64>,
    b: &Bootstrap,
) -> Result<Value> {
    let mut cols = Vec::new();
    for f in findings {
        match scores.classes.iter().position(|c| c == f) {
            Some(c) => cols.push(probs(c)),
            None => bail!(
                "truth column {f:?} is not one of the scored classes {:?}",
                scores.classes
            ),
        }
    }
    let truth: Vec<Vec<bool>> = (0..findings.len())
        .map(|f| m.pairs.iter().map(|&(t, _)| values[t][f]).collect())
        .collect();
    let n = m.pairs.len();
    let auc = |f: usize, idx: &[usize]| {
        let pos: Vec<bool> = idx.iter().map(|&i| truth[f][i]).collect();
        let s: Vec<f64> = idx.iter().map(|&i| cols[f][i]).collect();
        auroc(&pos, &s)
    };
    let all: Vec<usize> = (0..n).collect();
    let per_finding: Vec<Value> = (0..findings.len())
        .map(|f| {
            json!({
                "finding": findings[f],
                "positives": truth[f].iter().filter(|&&t| t).count(),
                "auroc": estimate(auc(f, &all), n, b, |idx| auc(f, idx)),
            })
        })
        .collect();
    let macro_of =
        |idx: &[usize]| macro_auroc(&(0..findings.len()).map(|f| auc(f, idx)).collect::<Vec<_>>());
    let ignored: Vec<&String> = scores
        .classes
        .iter()
        .filter(|c| !findings.contains(c))
        .collect();
    Ok(json!({
        "mode": "multi-label",
        "findings": findings,
        "macro_auroc": estimate(macro_of(&all), n, b, macro_of),
        "per_finding": per_finding,
        "scored_classes_not_in_truth": ignored,
    }))
}

/// The human-readable report.
pub fn table(r: &Value) -> String {
    let mut out = String::new();
    let est = |v: &Value| match (v["value"].as_f64(), v["low"].as_f64(), v["high"].as_f64()) {
        (Some(x), Some(lo), Some(hi)) => format!("{x:.4}  [{lo:.4}, {hi:.4}]"),
        (Some(x), _, _) => format!("{x:.4}"),
        _ => "undefined".to_string(),
    };
    out += &format!(
        "{} evaluation of {} images; 95% bootstrap intervals from {} resamples (seed {})\n\n",
        r["mode"].as_str().unwrap_or_default(),
        r["n"],
        r["bootstrap"]["reps"],
        r["bootstrap"]["seed"]
    );
    if r["mode"] == "single-label" {
        out += &format!("accuracy           {}\n", est(&r["accuracy"]));
        out += &format!("balanced accuracy  {}\n", est(&r["balanced_accuracy"]));
        out += &format!("macro AUROC        {}\n\n", est(&r["macro_auroc"]));
        out += &format!("{:<24} {:>8}  AUROC [95% CI]\n", "class", "support");
        for c in r["per_class"].as_array().into_iter().flatten() {
            out += &format!(
                "{:<24} {:>8}  {}\n",
                c["class"].as_str().unwrap_or_default(),
                c["support"].to_string(),
                est(&c["auroc"])
            );
        }
        out += "\nconfusion matrix (rows: truth, columns: predicted)\n";
        let classes: Vec<&str> = r["classes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let w = classes
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(4)
            .max(6);
        out += &format!("{:<w$}", "");
        for c in &classes {
            out += &format!("  {c:>w$}");
        }
        out += "\n";
        for (c, row) in classes
            .iter()
            .zip(r["confusion"]["matrix"].as_array().into_iter().flatten())
        {
            out += &format!("{c:<w$}");
            for v in row.as_array().into_iter().flatten() {
                out += &format!("  {:>w$}", v.to_string());
            }
            out += "\n";
        }
    } else {
        out += &format!("macro AUROC        {}\n\n", est(&r["macro_auroc"]));
        out += &format!("{:<24} {:>9}  AUROC [95% CI]\n", "finding", "positives");
        for f in r["per_finding"].as_array().into_iter().flatten() {
            out += &format!(
                "{:<24} {:>9}  {}\n",
                f["finding"].as_str().unwrap_or_default(),
                f["positives"].to_string(),
                est(&f["auroc"])
            );
        }
    }
    let u = &r["unmatched"];
    let count = |k: &str| u[k].as_array().map_or(0, Vec::len);
    out += &format!(
        "\nnot evaluated: {} truth files not scored, {} scored files not in the truth, {} failed images\n",
        count("truth_not_scored"),
        count("scored_not_in_truth"),
        count("failed")
    );
    out
}
