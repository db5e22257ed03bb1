//! `whyxray probe fit | predict`: embeddings (read from an `embed` output, or embedded now)
//! and labels -> a cross-validated logistic-regression probe saved as JSON; a probe and
//! embeddings of the same model -> class probabilities in classify's formats.

use crate::cli::{EmbeddingSource, ProbeFitConfig, ProbePredictConfig};
use crate::eval::data::{match_files, read_truth, ScoreRow, Scores, Truth};
use crate::model::Plan;
use crate::output::meta::model_record;
use crate::output::{ClassifyRow, ClassifyWriter, Sink};
use crate::printer::Printer;
use crate::probe::data::{
    describe, load, read_embeddings, same_model, save, to_json, Embeddings, Probe,
};
use crate::probe::logreg::{default_cs, fit_cv, fit_with, FitOptions};
use crate::score::normalise;
use crate::Outcome;
use anyhow::{bail, Result};
use serde_json::json;

/// The source's embeddings: read from its file, or embedded now (the model planned, `check`ed
/// before its weights are read, then run) and read back, the temporary files removed. `Err`
/// of the inner result: the embedding run stopped (Ctrl-C, no image found) with this outcome.
fn embeddings(
    source: &EmbeddingSource,
    plan: impl FnOnce() -> Result<Plan>,
    check: impl FnOnce(&Plan) -> Result<()>,
    printer: &Printer,
) -> Result<std::result::Result<(Embeddings, Outcome), Outcome>> {
    let mut embedded = Outcome::default();
    if let Some(run) = &source.embed {
        let result = plan().and_then(|plan| {
            check(&plan)?;
            super::embed::run(run, &plan, printer)
        });
        match result {
            Ok(o) if !o.interrupted && !o.nothing_found => embedded = o,
            other => {
                cleanup(source);
                if matches!(other, Ok(o) if o.interrupted) {
                    printer.warn("interrupted while embedding: nothing more was done");
                }
                return other.map(Err);
            }
        }
    }
    let read = read_embeddings(&source.path);
    cleanup(source);
    Ok(Ok((read?, embedded)))
}

/// Removes the private directory an on-the-spot embed run wrote into.
fn cleanup(source: &EmbeddingSource) {
    if let (Some(_), Some(dir)) = (&source.embed, source.path.parent()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Images that failed to embed count as failed.
fn with_embedding_failures(done: Outcome, embedded: Outcome) -> Outcome {
    Outcome {
        failed: done.failed.max(embedded.failed),
        ..done
    }
}

pub fn fit(
    c: &ProbeFitConfig,
    plan: impl FnOnce() -> Result<Plan>,
    printer: &Printer,
) -> Result<Outcome> {
    let Truth::Single { files, labels } = read_truth(&c.truth, c.label_column.as_deref())? else {
        bail!("probe fit needs a `file,label` truth CSV (one class per image; --label-column NAME picks the column)");
    };
    let (emb, embedded) = match embeddings(&c.source, plan, |_| Ok(()), printer)? {
        Ok(e) => e,
        Err(stopped) => return Ok(stopped),
    };
    let done = fit_on(c, emb, &files, &labels, printer)?;
    Ok(with_embedding_failures(done, embedded))
}

fn fit_on(
    c: &ProbeFitConfig,
    emb: Embeddings,
    files: &[String],
    labels: &[String],
    printer: &Printer,
) -> Result<Outcome> {
    let as_scores = Scores {
        classes: Vec::new(),
        rows: emb
            .rows
            .iter()
            .map(|r| ScoreRow {
                file: r.file.clone(),
                result: r
                    .embedding
                    .as_ref()
                    .map(|_| Vec::new())
                    .map_err(Clone::clone),
            })
            .collect(),
    };
    let m = match_files(files, &as_scores)?;
    for f in &m.truth_not_scored {
        printer.failure(f, "in the truth but has no embedding");
    }
    for (f, e) in &m.failed {
        printer.failure(f, format_args!("left out: its image failed: {e}"));
    }
    // sklearn orders classes by sorting their labels.
    let mut classes: Vec<String> = m.pairs.iter().map(|&(t, _)| labels[t].clone()).collect();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        bail!("probe fit needs at least two classes among the embedded training images, found {classes:?}");
    }
    let (dim, n) = (emb.dim, m.pairs.len());
    let mut x = Vec::with_capacity(n * dim);
    let mut y = Vec::with_capacity(n);
    for &(t, e) in &m.pairs {
        let mut row = emb.rows[e].embedding.clone().unwrap_or_default();
        normalise(&mut row);
        x.extend(row);
        y.push(classes.binary_search(&labels[t]).unwrap_or_default());
    }
    let opts = FitOptions {
        tol: c.tol,
        ..FitOptions::default()
    };
    let (weights, cv) = match c.c {
        Some(cval) => {
            let (model, rep) = fit_with(&x, dim, &y, classes.len(), cval, &opts, None);
            if !rep.converged {
                printer.warn(format_args!(
                    "the solver stopped at {} iterations before reaching --tol {}",
                    rep.iterations, c.tol
                ));
            }
            (model, serde_json::Value::Null)
        }
        None => {
            let small = classes
                .iter()
                .enumerate()
                .find(|(k, _)| y.iter().filter(|&&l| l == *k).count() < c.folds);
            if let Some((_, name)) = small {
                bail!(
                    "class {name:?} has fewer than {} training images: lower --folds or give --c",
                    c.folds
                );
            }
            let cs = if c.cs.is_empty() {
                default_cs()
            } else {
                c.cs.clone()
            };
            printer.note(format_args!(
                "cross-validating {} values of C over {} folds on {n} images",
                cs.len(),
                c.folds
            ));
            let (model, cv) = fit_cv(&x, dim, &y, classes.len(), &cs, c.folds, &opts);
            if !cv.converged {
                printer.warn(format_args!(
                    "some fits stopped before reaching --tol {}",
                    c.tol
                ));
            }
            let means: Vec<f64> = cv
                .scores
                .iter()
                .map(|s| s.iter().sum::<f64>() / s.len() as f64)
                .collect();
            let cv_json = json!({ "folds": c.folds, "scoring": "accuracy", "cs": cv.cs, "mean_accuracy": means, "fold_accuracy": cv.scores, "best_c": cv.best_c });
            (model, cv_json)
        }
    };
    let train_acc = (0..n)
        .filter(|&i| weights.predict(&x[i * dim..(i + 1) * dim]) == y[i])
        .count() as f64
        / n as f64;
    printer.note(format_args!(
        "C = {}: training accuracy {train_acc:.4} on {n} images, {} classes",
        weights.c,
        classes.len()
    ));
    let extra = json!({
        "cv": cv,
        "train": { "n": n, "accuracy": train_acc, "truth": c.truth, "tol": c.tol },
    });
    let text = to_json(
        &Probe {
            model: emb.model,
            classes,
            weights,
        },
        extra,
    )?;
    match &c.output {
        Some(path) => save(path, &text)?,
        None => Sink::open(None, false, printer)?.write_chunk(text.as_bytes())?,
    }
    Ok(Outcome {
        scored: n,
        failed: m.truth_not_scored.len() + m.failed.len(),
        ..Outcome::default()
    })
}

/// The probe is read, and checked against the model that will embed the images, before any
/// image is embedded.
pub fn predict(
    c: &ProbePredictConfig,
    plan: impl FnOnce() -> Result<Plan>,
    printer: &Printer,
) -> Result<Outcome> {
    let probe = load(&c.probe)?;
    let refuse = |other: &serde_json::Value| -> Result<()> {
        bail!(
            "the probe was fitted on embeddings of {}, these come from {}: refusing to apply it",
            describe(&probe.model),
            describe(other)
        )
    };
    let check = |plan: &Plan| {
        let model = model_record(plan, None)?;
        if same_model(&probe.model, &model) {
            Ok(())
        } else {
            refuse(&model)
        }
    };
    let (emb, embedded) = match embeddings(&c.source, plan, check, printer)? {
        Ok(e) => e,
        Err(stopped) => return Ok(stopped),
    };
    if !same_model(&probe.model, &emb.model) || probe.weights.dim != emb.dim {
        refuse(&emb.model)?;
    }
    let mut writer = ClassifyWriter::new(
        c.format,
        probe.classes.clone(),
        Sink::open(c.output.as_deref(), false, printer)?,
        false,
    );
    let mut outcome = Outcome::default();
    let rows: Vec<ClassifyRow> = emb
        .rows
        .into_iter()
        .map(|r| ClassifyRow {
            file: r.file,
            result: r.embedding.map(|mut e| {
                normalise(&mut e);
                probe
                    .weights
                    .predict_proba(&e)
                    .into_iter()
                    .map(|p| p as f32)
                    .collect()
            }),
        })
        .collect();
    outcome.failed = rows.iter().filter(|r| r.result.is_err()).count();
    outcome.scored = rows.len() - outcome.failed;
    writer.write(&rows)?;
    Ok(with_embedding_failures(outcome, embedded))
}
