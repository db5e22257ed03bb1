//! `whyxray search`: an embedding index and queries (texts and images embedded with the
//! index's model, or rows of another embedding file) -> the most similar images per query.

use super::{embed_texts_cached, for_each_batch};
use crate::cli::{RunConfig, SearchConfig};
use crate::index::{search, EmbeddingFile, Want};
use crate::inputs::InputSpec;
use crate::model::{Clip, Plan};
use crate::output::meta::model_record;
use crate::output::records::RecordWriter;
use crate::output::Sink;
use crate::printer::Printer;
use crate::probe::data::{describe, same_model};
use crate::Outcome;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// A query: what it is called in the output, and its embedding or why it has none.
type Query = (String, Result<Vec<f32>, String>);

pub fn run(
    c: &SearchConfig,
    plan: impl FnOnce() -> Result<Plan>,
    printer: &Printer,
) -> Result<Outcome> {
    let index = EmbeddingFile::open(&c.index)?;
    let mut queries: Vec<Query> = Vec::new();
    if !c.texts.is_empty() || !c.images.is_empty() {
        let plan = plan()?;
        let model = model_record(&plan, None)?;
        if !same_model(&index.model, &model) {
            bail!(
                "the index {} was made with {}; queries would be embedded with {}: refusing",
                c.index.display(),
                describe(&index.model),
                describe(&model)
            );
        }
        queries.extend(model_queries(c, &plan, printer)?);
    }
    if let Some(q) = &c.queries {
        queries.extend(file_queries(&index, q)?);
    }
    let usable: Vec<(usize, &Vec<f32>)> = queries
        .iter()
        .enumerate()
        .filter_map(|(i, (_, q))| q.as_ref().ok().map(|e| (i, e)))
        .collect();
    if let Some((_, q)) = usable.iter().find(|(_, q)| q.len() != index.dim) {
        bail!(
            "queries have {} dimensions, the index {}",
            q.len(),
            index.dim
        );
    }
    let vectors: Vec<Vec<f32>> = usable.iter().map(|(_, q)| (*q).clone()).collect();
    let mut results = search(&index, &vectors, c.want);
    if let Some(k) = c.limit {
        results.iter_mut().for_each(|r| r.truncate(k));
    }
    let wanted: BTreeSet<usize> = results.iter().flatten().map(|h| h.row).collect();
    let names = index.names(&wanted)?;
    let mut hits = results.into_iter();
    let mut rows = Vec::new();
    let mut outcome = Outcome::default();
    for (name, q) in &queries {
        match q {
            Ok(_) => {
                outcome.scored += 1;
                for (rank, h) in hits.next().into_iter().flatten().enumerate() {
                    rows.push(vec![
                        json!(name),
                        json!(rank + 1),
                        json!(names[&h.row]),
                        json!(h.cosine),
                        Value::Null,
                    ]);
                }
            }
            Err(e) => {
                outcome.failed += 1; // named on stderr when it failed to embed
                rows.push(vec![
                    json!(name),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                    json!(e),
                ]);
            }
        }
    }
    if matches!(c.want, Want::Above(_)) && rows.is_empty() {
        printer.note("no image is at or above --min-cos");
    }
    let sink = Sink::open(c.output.as_deref(), false, printer)?;
    let columns = vec!["query", "rank", "file", "cosine", "error"];
    RecordWriter::new(c.format, columns, sink).write_all(&rows)?;
    Ok(outcome)
}

/// Text queries (through the text cache) and image queries (through the pipeline), embedded
/// with the planned model, loaded only if needed.
fn model_queries(c: &SearchConfig, plan: &Plan, printer: &Printer) -> Result<Vec<Query>> {
    let tokenizer = crate::text::Tokenizer::bundled(plan.config.model.text.context_length)?;
    for w in c
        .texts
        .iter()
        .filter_map(|t| crate::prompts::cut_warning(t, &tokenizer))
    {
        printer.warn(w);
    }
    let mut model: Option<Clip> = None;
    let mut out: Vec<Query> = Vec::new();
    if !c.texts.is_empty() {
        let embedded = embed_texts_cached(plan, &mut model, &c.texts)?;
        out.extend(c.texts.iter().cloned().zip(embedded.into_iter().map(Ok)));
    }
    if !c.images.is_empty() {
        let model = match model {
            Some(m) => m,
            None => plan.load()?,
        };
        let run = RunConfig {
            inputs: InputSpec {
                args: c.images.iter().map(|p| p.display().to_string()).collect(),
                ..InputSpec::default()
            },
            batch_size: 8,
            jobs: std::thread::available_parallelism().map_or(1, usize::from),
            resume: false,
            decode: c.decode,
        };
        let quiet = Printer::new(true, false);
        for_each_batch(&model, &run, Default::default(), &quiet, |batch| {
            out.extend(batch.into_iter().map(|(input, e)| (input.path, e)));
            Ok(())
        })?;
    }
    Ok(out)
}

/// Every usable row of another embedding file of the same model, named by its sidecar.
fn file_queries(index: &EmbeddingFile, path: &std::path::Path) -> Result<Vec<Query>> {
    let q = EmbeddingFile::open(path)?;
    if !same_model(&index.model, &q.model) || q.dim != index.dim {
        bail!(
            "--queries {} comes from {}, the index from {}: refusing to compare them",
            path.display(),
            describe(&q.model),
            describe(&index.model)
        );
    }
    let rows: BTreeSet<usize> = (0..q.rows).filter(|&r| q.usable[r]).collect();
    let names = q.names(&rows)?;
    Ok(rows
        .into_iter()
        .map(|r| (names[&r].clone(), Ok(q.block(r, r + 1).into_owned())))
        .collect())
}
