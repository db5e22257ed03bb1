//! `whyxray eval`: ground truth + scores (read from an earlier run, or from a classify run just
//! made) -> the metrics report, as a table on stdout and/or JSON.

use crate::cli::EvalConfig;
use crate::eval::data::{match_files, read_scores, read_truth};
use crate::eval::report::{evaluate, table, Bootstrap};
use crate::output::Sink;
use crate::printer::Printer;
use crate::Outcome;
use anyhow::{Context, Result};
use std::path::Path;

/// Exit status: 0 when every truth file was evaluated, 1 when some were not (never scored,
/// or their image failed); each of those is named on stderr and listed in the JSON.
pub fn run(c: &EvalConfig, printer: &Printer) -> Result<Outcome> {
    let truth = read_truth(&c.truth)?;
    let scores = read_scores(&c.scores)?;
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
    let report = evaluate(&truth, &scores, &matched, &b)?;
    let json = serde_json::to_string_pretty(&report)? + "\n";
    match c.json.as_deref() {
        Some(p) if p == Path::new("-") => Sink::open(None, false)?.write_chunk(json.as_bytes())?,
        Some(p) => {
            std::fs::write(p, &json)
                .with_context(|| format!("cannot write --json {}", p.display()))?;
            Sink::open(None, false)?.write_chunk(table(&report).as_bytes())?;
        }
        None => Sink::open(None, false)?.write_chunk(table(&report).as_bytes())?,
    }
    Ok(Outcome {
        scored: matched.pairs.len(),
        failed: matched.truth_not_scored.len() + matched.failed.len(),
        interrupted: false,
    })
}
