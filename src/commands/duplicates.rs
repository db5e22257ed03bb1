//! `whyxray duplicates`: one or two embedding files -> every pair of images at or above a
//! cosine, most similar first, and how many images they involve.

use crate::cli::DuplicatesConfig;
use crate::index::{pairs, EmbeddingFile};
use crate::output::records::RecordWriter;
use crate::output::Sink;
use crate::printer::Printer;
use crate::probe::data::{describe, same_model};
use crate::Outcome;
use anyhow::{bail, Result};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Instant;

pub fn run(c: &DuplicatesConfig, printer: &Printer) -> Result<Outcome> {
    let a = EmbeddingFile::open(&c.index)?;
    let b = c.against.as_deref().map(EmbeddingFile::open).transpose()?;
    if let Some(b) = &b {
        if !same_model(&a.model, &b.model) || a.dim != b.dim {
            bail!(
                "--index {} comes from {}, --against {} from {}: cosines between two models \
                 mean nothing",
                a.path.display(),
                describe(&a.model),
                b.path.display(),
                describe(&b.model)
            );
        }
    }
    let start = Instant::now();
    let found = pairs(&a, b.as_ref(), c.min_cos);
    printer.detail(format_args!(
        "{} x {} rows scanned in {:.2} s",
        a.rows,
        b.as_ref().map_or(a.rows, |b| b.rows),
        start.elapsed().as_secs_f64()
    ));
    let rows_a: BTreeSet<usize> = found.iter().map(|p| p.a).collect();
    let rows_b: BTreeSet<usize> = found.iter().map(|p| p.b).collect();
    let names_a = a.names(&if b.is_some() {
        rows_a.clone()
    } else {
        rows_a.union(&rows_b).copied().collect()
    })?;
    let names_b = match &b {
        Some(b) => b.names(&rows_b)?,
        None => names_a.clone(),
    };
    let rows: Vec<_> = found
        .iter()
        .map(|p| vec![json!(names_a[&p.a]), json!(names_b[&p.b]), json!(p.cosine)])
        .collect();
    let involved = match &b {
        Some(_) => rows_a.len() + rows_b.len(),
        None => rows_a.union(&rows_b).count(),
    };
    let sink = Sink::open(c.output.as_deref(), false, printer)?;
    RecordWriter::new(c.format, vec!["a", "b", "cosine"], sink).write_all(&rows)?;
    printer.note(format_args!(
        "{} pairs at cosine >= {}, involving {involved} images",
        found.len(),
        c.min_cos
    ));
    Ok(Outcome {
        scored: found.len(),
        ..Outcome::default()
    })
}
