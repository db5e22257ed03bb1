//! Evaluate (inputs): the ground-truth CSV and an earlier run's scores (classify or probe
//! output: csv, tsv or jsonl), and which truth row goes with which scored image.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// One scored image: class probabilities in `Scores::classes` order, or its error.
pub struct ScoreRow {
    pub file: String,
    pub result: Result<Vec<f64>, String>,
}

pub struct Scores {
    pub classes: Vec<String>,
    pub rows: Vec<ScoreRow>,
}

/// `file,label` (single-label) or `file,<finding>,...` with 0/1 values (multi-label).
pub enum Truth {
    Single {
        files: Vec<String>,
        labels: Vec<String>,
    },
    Multi {
        files: Vec<String>,
        findings: Vec<String>,
        values: Vec<Vec<bool>>,
    },
}

impl Truth {
    pub fn files(&self) -> &[String] {
        match self {
            Truth::Single { files, .. } | Truth::Multi { files, .. } => files,
        }
    }
}

/// `file,label`, or `file,<finding>,...` (multi-label); with `label_column`, single-label from
/// that column whatever else the file holds (`file,finding,source`).
pub fn read_truth(path: &Path, label_column: Option<&str>) -> Result<Truth> {
    Ok(read_truth_with(path, label_column, &[])?.0)
}

/// Columns set aside from the truth (groups, metadata): name, and the value on each row.
pub type Aside = Vec<(String, Vec<String>)>;

/// As `read_truth`, with the columns that are not labels or findings returned with their
/// values: a single-label truth (a `label` column, or `label_column`) sets aside every other
/// column, a multi-label one the columns named in `aside`.
pub fn read_truth_with(
    path: &Path,
    label_column: Option<&str>,
    aside: &[String],
) -> Result<(Truth, Aside)> {
    let ctx = || format!("--truth {}", path.display());
    let text = crate::read_text(path).with_context(ctx)?;
    let mut r = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
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
    if header.len() < 2 {
        bail!(
            "{}: needs `file,label` or `file,<finding>,...` columns",
            ctx()
        );
    }
    let label_at = match label_column {
        Some(name) => Some(
            header
                .iter()
                .skip(1)
                .position(|h| h == name)
                .map(|i| i + 1)
                .with_context(|| {
                    format!(
                        "{}: no column {name:?} (--label-column); columns: {header:?}",
                        ctx()
                    )
                })?,
        ),
        None => header
            .iter()
            .position(|h| h == "label")
            .filter(|&i| i > 0 && !aside.contains(&header[i])),
    };
    // Single-label: every other column is set aside (groups, metadata); multi-label: the
    // named ones only, the rest are findings.
    let set_aside: Vec<usize> = (1..header.len())
        .filter(|&i| match label_at {
            Some(at) => i != at,
            None => aside.contains(&header[i]),
        })
        .collect();
    let kept: Vec<usize> = (1..header.len())
        .filter(|i| !set_aside.contains(i))
        .collect();
    if kept.is_empty() {
        bail!(
            "{}: no label or finding columns besides the group columns",
            ctx()
        );
    }
    let single = label_at.is_some();
    let mut aside_values: Vec<Vec<String>> = vec![Vec::new(); set_aside.len()];
    let mut files = Vec::new();
    let (mut labels, mut values) = (Vec::new(), Vec::new());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{} line {line}", ctx()))?;
        let file = rec[0].trim().to_string();
        if file.is_empty() {
            bail!("{} line {line}: empty file name", ctx());
        }
        if let Some(first) = seen.insert(file.clone(), line) {
            bail!(
                "{} line {line}: {file:?} is listed twice (first on line {first})",
                ctx()
            );
        }
        for (values, &i) in aside_values.iter_mut().zip(&set_aside) {
            values.push(rec[i].trim().to_string());
        }
        if let Some(at) = label_at {
            labels.push(rec[at].trim().to_string());
        } else {
            let row = kept
                .iter()
                .map(|&i| (&rec[i], &header[i]))
                .map(|(v, h)| match v.trim() {
                    "1" | "1.0" => Ok(true),
                    "0" | "0.0" => Ok(false),
                    other => bail!(
                        "{} line {line}, column {h:?}: {other:?} is not 0 or 1 (a multi-label truth \
                         has 0/1 columns; if {h:?} holds class names, pass --label-column {h})",
                        ctx()
                    ),
                });
            values.push(row.collect::<Result<Vec<bool>>>()?);
        }
        files.push(file);
    }
    let truth = if single {
        Truth::Single { files, labels }
    } else {
        Truth::Multi {
            files,
            findings: kept.iter().map(|&i| header[i].clone()).collect(),
            values,
        }
    };
    let aside = set_aside
        .iter()
        .map(|&i| header[i].clone())
        .zip(aside_values)
        .collect();
    Ok((truth, aside))
}

/// Every class the truth names must be a scored class (checked before any image is scored
/// when eval scores them now).
pub fn check_classes(truth: &Truth, classes: &[String], path: &Path) -> Result<()> {
    let unknown = match truth {
        Truth::Single { labels, .. } => labels
            .iter()
            .enumerate()
            .find(|(_, l)| !classes.contains(l))
            .map(|(i, l)| (format!("truth label {l:?}"), format!(" (line {})", i + 2))),
        Truth::Multi { findings, .. } => findings
            .iter()
            .find(|f| !classes.contains(f))
            .map(|f| (format!("truth column {f:?}"), String::new())),
    };
    match unknown {
        Some((what, at)) => bail!(
            "--truth {}: {what} is not one of the scored classes {classes:?}{at}",
            path.display()
        ),
        None => Ok(()),
    }
}

/// A classify (or probe predict) output: jsonl if it starts with `{`, else csv or tsv with
/// the header `file,<class>...,error`.
pub fn read_scores(path: &Path) -> Result<Scores> {
    let ctx = || format!("--scores {}", path.display());
    let raw = crate::read_text(path).with_context(ctx)?;
    let text = raw.as_str();
    let scores = if text.trim_start().starts_with('{') {
        jsonl_scores(text)
    } else {
        delimited_scores(text)
    }
    .with_context(ctx)?;
    let mut seen = HashMap::new();
    for (i, row) in scores.rows.iter().enumerate() {
        if let Some(first) = seen.insert(row.file.as_str(), i) {
            bail!(
                "{}: {:?} is scored twice (rows {} and {})",
                ctx(),
                row.file,
                first + 1,
                i + 1
            );
        }
    }
    Ok(scores)
}

fn delimited_scores(text: &str) -> Result<Scores> {
    let first = text.lines().next().unwrap_or_default();
    let delimiter = if first.contains('\t') { b'\t' } else { b',' };
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let header: Vec<String> = r.headers()?.iter().map(String::from).collect();
    if header.len() < 3 || header[0] != "file" || header[header.len() - 1] != "error" {
        bail!("not a classify output: the header must be file,<class>...,error (got {header:?})");
    }
    let classes = header[1..header.len() - 1].to_vec();
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("row {}", i + 2))?;
        let error = rec[header.len() - 1].trim();
        let result = if error.is_empty() {
            let probs = (1..header.len() - 1)
                .map(|c| {
                    rec[c]
                        .trim()
                        .parse::<f64>()
                        .with_context(|| format!("row {}, column {:?}", i + 2, header[c]))
                })
                .collect::<Result<Vec<f64>>>()?;
            Ok(probs)
        } else {
            Err(error.to_string())
        };
        rows.push(ScoreRow {
            file: rec[0].to_string(),
            result,
        });
    }
    Ok(Scores { classes, rows })
}

fn jsonl_scores(text: &str) -> Result<Scores> {
    let mut classes: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("line {}: not JSON", i + 1))?;
        let file = v["file"]
            .as_str()
            .with_context(|| format!("line {}: no \"file\"", i + 1))?;
        let result = match (&v["scores"], &v["error"]) {
            (Value::Object(map), _) => {
                let names: Vec<String> = map.keys().cloned().collect();
                let known = classes.get_or_insert_with(|| names.clone());
                if *known != names {
                    bail!(
                        "line {}: classes {names:?} differ from the first row's {known:?}",
                        i + 1
                    );
                }
                Ok(map
                    .values()
                    .map(|p| p.as_f64().context("a score is not a number"))
                    .collect::<Result<_>>()?)
            }
            (_, Value::String(e)) => Err(e.clone()),
            _ => bail!("line {}: neither \"scores\" nor \"error\"", i + 1),
        };
        rows.push(ScoreRow {
            file: file.to_string(),
            result,
        });
    }
    let classes = classes.context("no scored row: cannot tell the classes")?;
    Ok(Scores { classes, rows })
}

/// Truth rows paired with score rows: by exact path, else by the path one names being a
/// `/`-suffix of the other (truth `img/1.png` with scores `/data/img/1.png`), which must be
/// unique.
pub struct Matched {
    /// (truth index, score index), in truth order.
    pub pairs: Vec<(usize, usize)>,
    pub truth_not_scored: Vec<String>,
    pub scored_not_in_truth: Vec<String>,
    /// Truth files whose image failed in the scoring run, with its error.
    pub failed: Vec<(String, String)>,
}

pub fn match_files(truth: &[String], scores: &Scores) -> Result<Matched> {
    let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, r) in scores.rows.iter().enumerate() {
        by_name.entry(name(&r.file)).or_default().push(i);
    }
    let suffix = |long: &str, short: &str| {
        long == short || long.ends_with(&format!("/{}", short.trim_start_matches("./")))
    };
    let mut used = vec![false; scores.rows.len()];
    let mut m = Matched {
        pairs: Vec::new(),
        truth_not_scored: Vec::new(),
        scored_not_in_truth: Vec::new(),
        failed: Vec::new(),
    };
    for (t, file) in truth.iter().enumerate() {
        let candidates: Vec<usize> = by_name
            .get(&name(file))
            .map(|c| {
                c.iter()
                    .copied()
                    .filter(|&i| {
                        suffix(&scores.rows[i].file, file) || suffix(file, &scores.rows[i].file)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let exact: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| scores.rows[i].file == *file)
            .collect();
        let chosen = match (exact.as_slice(), candidates.as_slice()) {
            ([i], _) | ([], [i]) => *i,
            ([], []) => {
                m.truth_not_scored.push(file.clone());
                continue;
            }
            _ => bail!(
                "truth file {file:?} matches several scored files ({}); give full paths",
                candidates
                    .iter()
                    .map(|&i| scores.rows[i].file.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        if used[chosen] {
            bail!(
                "scored file {:?} matches two truth rows; give full paths",
                scores.rows[chosen].file
            );
        }
        used[chosen] = true;
        match &scores.rows[chosen].result {
            Ok(_) => m.pairs.push((t, chosen)),
            Err(e) => m.failed.push((file.clone(), e.clone())),
        }
    }
    m.scored_not_in_truth = scores
        .rows
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(r, _)| r.file.clone())
        .collect();
    Ok(m)
}
