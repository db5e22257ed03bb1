//! Evaluate (report): matched truth and scores -> accuracy, balanced accuracy, per-class and
//! macro AUROC and the confusion matrix (single-label), or per-finding and macro AUROC
//! (multi-label), each with a seeded 95% percentile bootstrap interval; as JSON and a table.

use super::data::{Matched, Scores, Truth};
use super::metrics::{
    accuracy, auroc, balanced_accuracy, bootstrap_values, confusion, macro_auroc, Interval,
};
use anyhow::{bail, Result};
use serde_json::{json, Value};

pub struct Bootstrap {
    pub reps: usize,
    pub seed: u64,
}

/// A metric: its value on the data, and its bootstrap replicates (`None` where undefined),
/// kept so that statistics across groups can be taken replicate by replicate.
pub struct Metric {
    pub value: Option<f64>,
    pub reps: Vec<Option<f64>>,
}

impl Metric {
    fn new(
        value: Option<f64>,
        n: usize,
        b: &Bootstrap,
        stat: impl Fn(&[usize]) -> Option<f64>,
    ) -> Self {
        Self {
            value,
            reps: bootstrap_values(n, b.reps, b.seed, stat),
        }
    }

    /// `{"value": v, "low": .., "high": .., "reps_used": ..}`, nulls where undefined.
    pub fn json(&self) -> Value {
        interval_json(self.value, Interval::of(&self.reps))
    }
}

pub fn interval_json(value: Option<f64>, ci: Option<Interval>) -> Value {
    json!({
        "value": value,
        "low": ci.map(|c| c.low),
        "high": ci.map(|c| c.high),
        "reps_used": ci.map(|c| c.reps_used),
    })
}

/// The metrics of some matched (truth, score) pairs: the report, and each metric by name
/// (`accuracy`, `balanced_accuracy`, `macro_auroc`, `auroc:<class>`).
pub struct Evaluation {
    pub report: Value,
    pub metrics: Vec<(String, Metric)>,
}

/// The whole report: every matched pair, plus what could not be evaluated.
pub fn evaluate(truth: &Truth, scores: &Scores, m: &Matched, b: &Bootstrap) -> Result<Value> {
    let n = m.pairs.len();
    if n == 0 {
        bail!("no truth file was scored: nothing to evaluate (check the file names in both)");
    }
    let mut report = evaluate_pairs(truth, scores, &m.pairs, b)?.report;
    report["bootstrap"] =
        json!({ "reps": b.reps, "seed": b.seed, "interval": "95% percentile (numpy linear)" });
    report["unmatched"] = json!({
        "truth_not_scored": m.truth_not_scored,
        "scored_not_in_truth": m.scored_not_in_truth,
        "failed": m.failed.iter().map(|(f, e)| json!({"file": f, "error": e})).collect::<Vec<_>>(),
    });
    Ok(report)
}

/// The metrics of `pairs` (truth index, score index) alone, resampling only them.
pub fn evaluate_pairs(
    truth: &Truth,
    scores: &Scores,
    pairs: &[(usize, usize)],
    b: &Bootstrap,
) -> Result<Evaluation> {
    let probs = |col: usize| -> Vec<f64> {
        pairs
            .iter()
            .map(|&(_, s)| scores.rows[s].result.as_ref().map_or(f64::NAN, |p| p[col]))
            .collect()
    };
    let mut e = match truth {
        Truth::Single { labels, .. } => single(labels, scores, pairs, &probs, b)?,
        Truth::Multi {
            findings, values, ..
        } => multi(findings, values, scores, pairs, &probs, b)?,
    };
    e.report["n"] = json!(pairs.len());
    Ok(e)
}

fn single(
    labels: &[String],
    scores: &Scores,
    pairs: &[(usize, usize)],
    probs: &dyn Fn(usize) -> Vec<f64>,
    b: &Bootstrap,
) -> Result<Evaluation> {
    let k = scores.classes.len();
    let mut truth = Vec::with_capacity(pairs.len());
    for &(t, _) in pairs {
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
    let aucs: Vec<Metric> = (0..k)
        .map(|c| Metric::new(class_auc(c, &all), n, b, |idx| class_auc(c, idx)))
        .collect();
    let per_class: Vec<Value> = (0..k)
        .map(|c| {
            json!({
                "class": scores.classes[c],
                "support": truth.iter().filter(|&&t| t == c).count(),
                "auroc": aucs[c].json(),
            })
        })
        .collect();
    let macro_of =
        |idx: &[usize]| macro_auroc(&(0..k).map(|c| class_auc(c, idx)).collect::<Vec<_>>());
    let acc = Metric::new(Some(accuracy(&truth, &pred)), n, b, |idx| {
        Some(accuracy(&pick(idx, &truth), &pick(idx, &pred)))
    });
    let bacc = Metric::new(Some(balanced_accuracy(&truth, &pred)), n, b, |idx| {
        Some(balanced_accuracy(&pick(idx, &truth), &pick(idx, &pred)))
    });
    let mac = Metric::new(macro_of(&all), n, b, macro_of);
    let report = json!({
        "mode": "single-label",
        "classes": scores.classes,
        "accuracy": acc.json(),
        "balanced_accuracy": bacc.json(),
        "macro_auroc": mac.json(),
        "per_class": per_class,
        "confusion": { "rows": "truth", "columns": "predicted", "matrix": confusion(&truth, &pred, k) },
    });
    let mut metrics = vec![
        ("accuracy".to_string(), acc),
        ("balanced_accuracy".to_string(), bacc),
        ("macro_auroc".to_string(), mac),
    ];
    metrics.extend(
        scores
            .classes
            .iter()
            .zip(aucs)
            .map(|(c, m)| (format!("auroc:{c}"), m)),
    );
    Ok(Evaluation { report, metrics })
}

fn multi(
    findings: &[String],
    values: &[Vec<bool>],
    scores: &Scores,
    pairs: &[(usize, usize)],
    probs: &dyn Fn(usize) -> Vec<f64>,
    b: &Bootstrap,
) -> Result<Evaluation> {
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
        .map(|f| pairs.iter().map(|&(t, _)| values[t][f]).collect())
        .collect();
    let n = pairs.len();
    let auc = |f: usize, idx: &[usize]| {
        let pos: Vec<bool> = idx.iter().map(|&i| truth[f][i]).collect();
        let s: Vec<f64> = idx.iter().map(|&i| cols[f][i]).collect();
        auroc(&pos, &s)
    };
    let all: Vec<usize> = (0..n).collect();
    let aucs: Vec<Metric> = (0..findings.len())
        .map(|f| Metric::new(auc(f, &all), n, b, |idx| auc(f, idx)))
        .collect();
    let per_finding: Vec<Value> = (0..findings.len())
        .map(|f| {
            json!({
                "finding": findings[f],
                "positives": truth[f].iter().filter(|&&t| t).count(),
                "auroc": aucs[f].json(),
            })
        })
        .collect();
    let macro_of =
        |idx: &[usize]| macro_auroc(&(0..findings.len()).map(|f| auc(f, idx)).collect::<Vec<_>>());
    let mac = Metric::new(macro_of(&all), n, b, macro_of);
    let ignored: Vec<&String> = scores
        .classes
        .iter()
        .filter(|c| !findings.contains(c))
        .collect();
    let report = json!({
        "mode": "multi-label",
        "findings": findings,
        "macro_auroc": mac.json(),
        "per_finding": per_finding,
        "scored_classes_not_in_truth": ignored,
    });
    let mut metrics = vec![("macro_auroc".to_string(), mac)];
    metrics.extend(
        findings
            .iter()
            .zip(aucs)
            .map(|(f, m)| (format!("auroc:{f}"), m)),
    );
    Ok(Evaluation { report, metrics })
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
