//! Evaluate (subgroups): `--group-by COLUMN` splits the truth's images by the values of one or
//! more columns (of the truth CSV, or of `--groups FILE`), reports every metric per group with
//! a bootstrap that resamples within the group, and across groups the worst, the best and the
//! gap between them with its own interval (the domain-shift and fairness tables of the
//! WhyXrayCLIP paper).

use super::data::{match_files, Aside, Matched, ScoreRow, Scores, Truth};
use super::metrics::Interval;
use super::report::{evaluate_pairs, interval_json, Bootstrap, Metric};
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Several group columns make one group per combination of values, joined by this.
const JOIN: &str = " / ";

/// Which group each truth row is in.
pub struct Grouping {
    pub by: Vec<String>,
    /// Per truth row: its group's key, `None` when a value is missing.
    pub keys: Vec<Option<String>>,
}

impl Grouping {
    /// From the columns set aside from the truth CSV.
    pub fn from_truth(by: &[String], aside: &Aside, path: &Path) -> Result<Self> {
        let columns: Vec<&Vec<String>> = by
            .iter()
            .map(|c| {
                aside
                    .iter()
                    .find(|(name, _)| name == c)
                    .map(|(_, v)| v)
                    .with_context(|| {
                        format!(
                            "--group-by {c}: --truth {} has no such column (or give --groups FILE)",
                            path.display()
                        )
                    })
            })
            .collect::<Result<_>>()?;
        let rows = columns.first().map_or(0, |c| c.len());
        let keys = (0..rows)
            .map(|r| key(columns.iter().map(|c| c[r].as_str())))
            .collect();
        Ok(Self {
            by: by.to_vec(),
            keys,
        })
    }

    /// From `--groups FILE` (`file,<column>...`), its files matched to the truth's as eval
    /// matches scores (exactly, or as a path suffix).
    pub fn from_file(by: &[String], path: &Path, truth_files: &[String]) -> Result<Self> {
        let ctx = || format!("--groups {}", path.display());
        let text = crate::read_text(path).with_context(ctx)?;
        let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let header: Vec<String> = r
            .headers()
            .with_context(ctx)?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        if header.first().map(String::as_str) != Some("file") {
            bail!(
                "{}: the first column must be `file` (header: {header:?})",
                ctx()
            );
        }
        let at: Vec<usize> = by
            .iter()
            .map(|c| {
                header.iter().position(|h| h == c).with_context(|| {
                    format!("--group-by {c}: {} has no such column ({header:?})", ctx())
                })
            })
            .collect::<Result<_>>()?;
        let mut rows = Vec::new();
        let mut values = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.with_context(|| format!("{} line {}", ctx(), i + 2))?;
            rows.push(ScoreRow {
                file: rec[0].trim().to_string(),
                result: Ok(Vec::new()),
            });
            values.push(key(at.iter().map(|&a| rec[a].trim())));
        }
        let listed = Scores {
            classes: Vec::new(),
            rows,
        };
        let m = match_files(truth_files, &listed).with_context(ctx)?;
        let mut keys = vec![None; truth_files.len()];
        for (t, g) in m.pairs {
            keys[t] = values[g].clone();
        }
        Ok(Self {
            by: by.to_vec(),
            keys,
        })
    }
}

/// The group key of some values; `None` if one is empty.
fn key<'a>(values: impl Iterator<Item = &'a str>) -> Option<String> {
    let values: Vec<&str> = values.map(str::trim).collect();
    (!values.iter().any(|v| v.is_empty())).then(|| values.join(JOIN))
}

/// Each group's bootstrap has its own stream, seeded by the run's seed and the group's key
/// (FNV-1a), so adding a group changes no other group's intervals.
pub fn group_seed(seed: u64, key: &str) -> u64 {
    seed ^ crate::fnv1a64(key.as_bytes())
}

/// `groups`, `across_groups` and the files without a group, to merge into the report.
pub fn evaluate_groups(
    truth: &Truth,
    scores: &Scores,
    m: &Matched,
    grouping: &Grouping,
    b: &Bootstrap,
) -> Result<Value> {
    let mut members: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
    let mut matched = vec![false; grouping.keys.len()];
    m.pairs.iter().for_each(|&(t, _)| matched[t] = true);
    let mut no_group = Vec::new();
    for (t, key) in grouping.keys.iter().enumerate() {
        match key {
            Some(k) => {
                members.entry(k.as_str()).or_default();
            }
            None if matched[t] => no_group.push(truth.files()[t].clone()),
            None => {}
        }
    }
    for &(t, s) in &m.pairs {
        if let Some(k) = &grouping.keys[t] {
            members.entry(k.as_str()).or_default().push((t, s));
        }
    }
    let mut groups = Map::new();
    let mut metrics: Vec<(&str, Vec<(String, Metric)>)> = Vec::new();
    for (key, pairs) in &members {
        let mut entry = if pairs.is_empty() {
            json!({ "n": 0, "note": "no image of this group was scored" })
        } else {
            let gb = Bootstrap {
                reps: b.reps,
                seed: group_seed(b.seed, key),
            };
            let e = evaluate_pairs(truth, scores, pairs, &gb)?;
            metrics.push((key, e.metrics));
            e.report
        };
        let values: Map<String, Value> = grouping
            .by
            .iter()
            .zip(key.split(JOIN))
            .map(|(c, v)| (c.clone(), json!(v)))
            .collect();
        entry["values"] = Value::Object(values);
        groups.insert(key.to_string(), entry);
    }
    Ok(json!({
        "group_by": grouping.by,
        "groups": groups,
        "across_groups": across(&metrics, b.reps),
        "no_group": no_group,
    }))
}

/// For each metric: the worst and best group by value, and the gap (best - worst) with an
/// interval from the replicates: in each, the gap between the best and worst group of that
/// replicate, over the groups where the metric is defined (two at least).
fn across(metrics: &[(&str, Vec<(String, Metric)>)], reps: usize) -> Value {
    let mut out = Map::new();
    let names: Vec<&String> = metrics
        .first()
        .map(|(_, m)| m.iter().map(|(n, _)| n).collect())
        .unwrap_or_default();
    for name in names {
        let per_group: Vec<(&str, &Metric)> = metrics
            .iter()
            .filter_map(|(g, ms)| ms.iter().find(|(n, _)| n == name).map(|(_, m)| (*g, m)))
            .collect();
        let defined: Vec<(&str, f64)> = per_group
            .iter()
            .filter_map(|(g, m)| m.value.map(|v| (*g, v)))
            .collect();
        let worst = defined
            .iter()
            .fold(None, |w: Option<(&str, f64)>, &(g, v)| match w {
                Some((_, wv)) if wv <= v => w,
                _ => Some((g, v)),
            });
        let best = defined
            .iter()
            .fold(None, |w: Option<(&str, f64)>, &(g, v)| match w {
                Some((_, wv)) if wv >= v => w,
                _ => Some((g, v)),
            });
        let gaps: Vec<Option<f64>> = (0..reps)
            .map(|r| {
                let vals: Vec<f64> = per_group
                    .iter()
                    .filter_map(|(_, m)| m.reps.get(r).copied().flatten())
                    .collect();
                (vals.len() >= 2).then(|| {
                    let hi = vals.iter().copied().fold(f64::MIN, f64::max);
                    let lo = vals.iter().copied().fold(f64::MAX, f64::min);
                    hi - lo
                })
            })
            .collect();
        let gap = match (worst, best) {
            (Some((_, w)), Some((_, bv))) if defined.len() >= 2 => Some(bv - w),
            _ => None,
        };
        let undefined: Vec<&str> = per_group
            .iter()
            .filter(|(_, m)| m.value.is_none())
            .map(|(g, _)| *g)
            .collect();
        let side = |x: Option<(&str, f64)>| x.map(|(g, v)| json!({ "group": g, "value": v }));
        out.insert(
            name.clone(),
            json!({
                "worst": side(worst),
                "best": side(best),
                "gap": interval_json(gap, Interval::of(&gaps)),
                "undefined_in": undefined,
            }),
        );
    }
    Value::Object(out)
}

/// The groups' part of the human-readable report.
pub fn table(g: &Value) -> String {
    let mut out = String::new();
    let by: Vec<&str> = g["group_by"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let groups = g["groups"].as_object().cloned().unwrap_or_default();
    let est = |v: &Value| match (v["value"].as_f64(), v["low"].as_f64(), v["high"].as_f64()) {
        (Some(x), Some(lo), Some(hi)) => format!("{x:.4} [{lo:.4}, {hi:.4}]"),
        (Some(x), _, _) => format!("{x:.4}"),
        _ => "undefined".to_string(),
    };
    out += &format!(
        "\nby {} ({} groups; intervals resample within each group)\n",
        by.join(JOIN),
        groups.len()
    );
    let single = groups.values().any(|r| r["mode"] == "single-label");
    let cols: &[(&str, &str)] = if single {
        &[
            ("accuracy", "accuracy"),
            ("balanced_accuracy", "balanced accuracy"),
            ("macro_auroc", "macro AUROC"),
        ]
    } else {
        &[("macro_auroc", "macro AUROC")]
    };
    let w = groups
        .keys()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    out += &format!("{:<w$} {:>6}", "group", "n");
    for (_, title) in cols {
        out += &format!("  {title:<26}");
    }
    out += "\n";
    for (key, r) in &groups {
        let mut line = format!("{key:<w$} {:>6}", r["n"].to_string());
        for (k, _) in cols {
            line += &format!("  {:<26}", est(&r[*k]));
        }
        out += line.trim_end();
        out += "\n";
    }
    out += "\nacross groups: worst .. best, gap = best - worst [95% CI]\n";
    for (name, a) in g["across_groups"].as_object().into_iter().flatten() {
        let side = |s: &Value| match (s["group"].as_str(), s["value"].as_f64()) {
            (Some(grp), Some(v)) => format!("{grp} {v:.4}"),
            _ => "-".to_string(),
        };
        let undefined: Vec<&str> = a["undefined_in"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let note = if undefined.is_empty() {
            String::new()
        } else {
            format!("   (undefined in {})", undefined.join(", "))
        };
        out += &format!(
            "{name:<28} {} .. {}   gap {}{note}\n",
            side(&a["worst"]),
            side(&a["best"]),
            est(&a["gap"])
        );
    }
    let none = g["no_group"].as_array().map_or(0, Vec::len);
    if none > 0 {
        out += &format!("\n{none} evaluated files have no group value (listed in the JSON)\n");
    }
    out
}
