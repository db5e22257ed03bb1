//! `whyxray eval`: ground truth + scores (read from an earlier run, or from a classify run just
//! made) -> the metrics report, as a table on stdout and/or JSON.

use crate::cli::EvalConfig;
use crate::eval::data::{check_classes, match_files, read_scores, read_truth_with, Truth};
use crate::eval::groups::{self, evaluate_groups, Grouping};
use crate::eval::report::{evaluate, table, Bootstrap};
use crate::model::Plan;
use crate::output::Sink;
use crate::printer::Printer;
use crate::Outcome;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;

/// Exit status: 0 when every truth file was evaluated, 1 when some were not (never scored,
/// or their image failed); each of those is named on stderr and listed in the JSON. The truth
/// is read and checked against the classes before any image is scored.
pub fn run(
    c: &EvalConfig,
    plan: impl FnOnce() -> Result<Plan>,
    printer: &Printer,
) -> Result<Outcome> {
    let (truth, grouping) = read(c, printer)?;
    let Some(cc) = c.run.as_deref() else {
        return report(c, &truth, grouping.as_ref(), printer);
    };
    check_classes(&truth, &cc.labels, &c.truth)?;
    let scored = plan().and_then(|plan| super::classify::run(cc, &plan, printer));
    let result = scored.and_then(|o| {
        if o.interrupted || o.nothing_found {
            return Ok(o);
        }
        report(c, &truth, grouping.as_ref(), printer)
    });
    if !c.keep_scores {
        if let Some(dir) = c.scores.parent() {
            let _ = std::fs::remove_dir_all(dir); // the private temporary directory
        }
    }
    result
}

/// The truth and, with `--group-by`, each truth row's group (from its own columns or
/// `--groups FILE`).
fn read(c: &EvalConfig, printer: &Printer) -> Result<(Truth, Option<Grouping>)> {
    let aside = if c.groups.is_none() {
        &c.group_by[..]
    } else {
        &[]
    };
    let (truth, set_aside) = read_truth_with(&c.truth, c.label_column.as_deref(), aside)?;
    let unused: Vec<&str> = set_aside
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| c.groups.is_some() || !c.group_by.iter().any(|g| g == name))
        .collect();
    if !unused.is_empty() {
        printer.note(format_args!(
            "--truth {}: columns {unused:?} are not labels (--group-by one to evaluate by it)",
            c.truth.display()
        ));
    }
    let grouping = match (&c.groups, c.group_by.is_empty()) {
        (_, true) => None,
        (Some(file), false) => Some(Grouping::from_file(&c.group_by, file, truth.files())?),
        (None, false) => Some(Grouping::from_truth(&c.group_by, &set_aside, &c.truth)?),
    };
    Ok((truth, grouping))
}

fn report(
    c: &EvalConfig,
    truth: &Truth,
    grouping: Option<&Grouping>,
    printer: &Printer,
) -> Result<Outcome> {
    let scores = read_scores(&c.scores)?;
    check_classes(truth, &scores.classes, &c.truth)?;
    let matched = match_files(truth.files(), &scores)?;
    for f in &matched.truth_not_scored {
        printer.failure(f, "in the truth but not scored");
    }
    for (f, e) in &matched.failed {
        printer.failure(f, format_args!("not evaluated: its image failed: {e}"));
    }
    if !matched.scored_not_in_truth.is_empty() {
        printer.warn(format_args!(
            "{} scored files are not in the truth and were left out (e.g. {})",
            matched.scored_not_in_truth.len(),
            matched.scored_not_in_truth[0]
        ));
    }
    let b = Bootstrap {
        reps: c.bootstrap,
        seed: c.seed,
    };
    let mut report = evaluate(truth, &scores, &matched, &b)?;
    let mut text = table(&report);
    if let Some(grouping) = grouping {
        let g = evaluate_groups(truth, &scores, &matched, grouping, &b)?;
        let none = g["no_group"].as_array().map_or(0, Vec::len);
        if none > 0 {
            printer.warn(format_args!(
                "{none} evaluated files have no value for --group-by {} (left out of the groups, \
                 listed in the JSON's no_group)",
                c.group_by.join(", ")
            ));
        }
        text += &groups::table(&g);
        if let (Value::Object(r), Value::Object(g)) = (&mut report, g) {
            r.extend(g);
        }
    }
    let json = serde_json::to_string_pretty(&report)? + "\n";
    let mut stdout = Sink::open(None, false, printer)?;
    match c.json.as_deref() {
        Some(p) if p == Path::new("-") => stdout.write_chunk(json.as_bytes())?,
        Some(p) => {
            std::fs::write(p, &json)
                .with_context(|| format!("cannot write --json {}", p.display()))?;
            stdout.write_chunk(text.as_bytes())?;
        }
        None => stdout.write_chunk(text.as_bytes())?,
    }
    Ok(Outcome {
        scored: matched.pairs.len(),
        failed: matched.truth_not_scored.len() + matched.failed.len(),
        ..Outcome::default()
    })
}
