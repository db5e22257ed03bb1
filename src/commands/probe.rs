//! `whyxray probe fit | predict | explain`: embeddings (read from an `embed` output, or
//! embedded now) and labels -> a cross-validated logistic-regression probe saved as JSON, on
//! the embeddings or on a concept bank's scores (a concept bottleneck); a probe and embeddings
//! of the same model -> class probabilities in classify's formats, with a concept probe's
//! reasons; a concept probe -> the concepts it weighs most, for and against each class.

use crate::cli::{
    ConceptSpec, EmbeddingSource, ProbeExplainConfig, ProbeFitConfig, ProbePredictConfig,
};
use crate::concepts::Accumulator;
use crate::eval::data::{match_files, read_truth, ScoreRow, Scores, Truth};
use crate::model::{Clip, Plan};
use crate::output::meta::model_record;
use crate::output::{ClassifyRow, ClassifyWriter, Sink};
use crate::printer::Printer;
use crate::probe::data::{
    describe, load, read_embeddings, same_model, save, to_json, Embeddings, Probe,
};
use crate::probe::features::{contributions, ConceptFeatures};
use crate::probe::logreg::{Feature, FitOptions};
use crate::probe::train::{train, Search, Trained};
use crate::score::normalise;
use crate::Outcome;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// The source's embeddings: read from its file, or embedded now with `plan` (`check`ed first)
/// and read back, the temporary files removed. `Err` of the inner result: the embedding run
/// stopped (Ctrl-C, no image found) with this outcome.
fn embeddings(
    source: &EmbeddingSource,
    plan: Option<&Plan>,
    check: impl FnOnce(&Plan) -> Result<()>,
    printer: &Printer,
) -> Result<std::result::Result<(Embeddings, Outcome), Outcome>> {
    let mut embedded = Outcome::default();
    if let Some(run) = &source.embed {
        let result = plan
            .context("embedding images needs the model")
            .and_then(|plan| {
                check(plan)?;
                super::embed::run(run, plan, printer)
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
    // A plan is needed to embed images now, or to embed the concepts' text.
    let plan = match c.source.embed.is_some() || c.concepts.is_some() {
        true => Some(plan()?),
        false => None,
    };
    if let (Some(plan), Some(spec)) = (&plan, &c.concepts) {
        if let Some((path, stats)) = &spec.reference_stats {
            stats.check(&spec.bank, &model_record(plan, None)?, path)?;
        }
    }
    let (emb, embedded) = match embeddings(&c.source, plan.as_ref(), |_| Ok(()), printer)? {
        Ok(e) => e,
        Err(stopped) => return Ok(stopped),
    };
    if let (Some(plan), Some(_)) = (&plan, &c.concepts) {
        let model = model_record(plan, None)?;
        if !same_model(&emb.model, &model) {
            bail!(
                "the embeddings come from {}, the concepts would be embedded with {}: refusing",
                describe(&emb.model),
                describe(&model)
            );
        }
    }
    let done = fit_on(c, plan.as_ref(), emb, &files, &labels, printer)?;
    Ok(with_embedding_failures(done, embedded))
}

fn fit_on(
    c: &ProbeFitConfig,
    plan: Option<&Plan>,
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
    let rows: Vec<Vec<f32>> = m
        .pairs
        .iter()
        .map(|&(_, e)| {
            let mut row = emb.rows[e].embedding.clone().unwrap_or_default();
            normalise(&mut row);
            row
        })
        .collect();
    let y: Vec<usize> = m
        .pairs
        .iter()
        .map(|&(t, _)| classes.binary_search(&labels[t]).unwrap_or_default())
        .collect();
    let search = Search {
        c: c.c,
        cs: c.cs.clone(),
        folds: c.folds,
        opts: FitOptions {
            tol: c.tol,
            penalty: c.penalty,
            ..FitOptions::default()
        },
    };
    let n = y.len();
    if c.c.is_none() {
        printer.note(format_args!(
            "cross-validating {} values of C over {} folds on {n} images",
            if c.cs.is_empty() { 10 } else { c.cs.len() },
            c.folds
        ));
    }
    let (trained, concepts) = match (&c.concepts, plan) {
        (Some(spec), Some(plan)) => {
            let features = concept_features(spec, plan, &rows, &emb.model)?;
            let x: Vec<f64> = rows
                .iter()
                .flat_map(|r| features.z(&features.cosines(r)))
                .collect();
            let dim = features.bank.concepts.len();
            (
                train_and_tell(&x, dim, &y, &classes, &search, printer)?,
                Some(features),
            )
        }
        (Some(_), None) => bail!("concept features need the model"),
        (None, _) => {
            let x: Vec<f32> = rows.concat();
            (
                train_and_tell(&x, emb.dim, &y, &classes, &search, printer)?,
                None,
            )
        }
    };
    let extra = json!({
        "cv": trained.cv,
        "train": { "n": n, "accuracy": trained.training_accuracy, "truth": c.truth, "tol": c.tol },
    });
    let text = to_json(
        &Probe {
            model: emb.model,
            classes,
            weights: trained.model,
            penalty: c.penalty,
            concepts,
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

fn train_and_tell<T: Feature>(
    x: &[T],
    dim: usize,
    y: &[usize],
    classes: &[String],
    search: &Search,
    printer: &Printer,
) -> Result<Trained> {
    let t = train(x, dim, y, classes, search)?;
    if !t.converged {
        printer.warn(format_args!(
            "some fits stopped before reaching --tol {}",
            search.opts.tol
        ));
    }
    let nonzero = t.model.coef.iter().filter(|w| **w != 0.0).count();
    printer.note(format_args!(
        "C = {}: training accuracy {:.4} on {} images, {} classes, {nonzero} of {} weights nonzero",
        t.model.c,
        t.training_accuracy,
        y.len(),
        classes.len(),
        t.model.coef.len()
    ));
    Ok(t)
}

/// The bank's text embeddings (through the text cache) and the statistics the z-scores are
/// taken against: `--reference-stats`, else the training images' own.
fn concept_features(
    spec: &ConceptSpec,
    plan: &Plan,
    rows: &[Vec<f32>],
    model: &Value,
) -> Result<ConceptFeatures> {
    let prompts = crate::concepts::prompts(&spec.bank, &spec.templates);
    let mut loaded: Option<Clip> = None;
    let embeddings = super::concepts::concept_embeddings(plan, &mut loaded, &prompts)?;
    let mut features = ConceptFeatures {
        bank: spec.bank.clone(),
        templates: spec.templates.clone(),
        embeddings,
        mean: Vec::new(),
        std: Vec::new(),
        stats_source: String::new(),
    };
    let (mean, std, source) = match &spec.reference_stats {
        Some((path, s)) => (
            s.mean.clone(),
            s.std.clone(),
            format!("{} ({} images)", path.display(), s.n),
        ),
        None => {
            let mut acc = Accumulator::new(spec.bank.concepts.len());
            rows.iter().for_each(|r| acc.add(&features.cosines(r)));
            let s = acc.finish(&spec.bank, model.clone())?;
            (s.mean, s.std, format!("the {} training images", s.n))
        }
    };
    (features.mean, features.std, features.stats_source) = (mean, std, source);
    Ok(features)
}

/// The probe is read, and checked against the model that will embed the images, before any
/// image is embedded.
pub fn predict(
    c: &ProbePredictConfig,
    plan: impl FnOnce() -> Result<Plan>,
    printer: &Printer,
) -> Result<Outcome> {
    let probe = load(&c.probe)?;
    if c.top.is_some() && probe.concepts.is_none() {
        bail!(
            "--top lists a concept probe's reasons; {} reads embeddings",
            c.probe.display()
        );
    }
    let refuse = |other: &Value| -> Result<()> {
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
    let plan = match c.source.embed.is_some() {
        true => Some(plan()?),
        false => None,
    };
    let (emb, embedded) = match embeddings(&c.source, plan.as_ref(), check, printer)? {
        Ok(e) => e,
        Err(stopped) => return Ok(stopped),
    };
    let needs = probe
        .concepts
        .as_ref()
        .map_or(probe.weights.dim, |f| f.embeddings[0].len());
    if !same_model(&probe.model, &emb.model) || needs != emb.dim {
        refuse(&emb.model)?;
    }
    let mut writer = ClassifyWriter::new(
        c.format,
        probe.classes.clone(),
        Sink::open(c.output.as_deref(), false, printer)?,
        false,
    );
    let k = c.top.unwrap_or(5);
    let rows: Vec<ClassifyRow> = emb
        .rows
        .into_iter()
        .map(|r| match r.embedding {
            Err(e) => ClassifyRow::failed(r.file, e),
            Ok(mut e) => {
                normalise(&mut e);
                let (proba, reasons) = match &probe.concepts {
                    None => (probe.weights.predict_proba(&e), Vec::new()),
                    Some(f) => {
                        let z = f.z(&f.cosines(&e));
                        let proba = probe.weights.predict_proba(&z);
                        let top = argmax(&proba);
                        let why =
                            contributions(&probe.weights.coef, probe.classes.len(), top, &z, k);
                        let reasons = why
                            .into_iter()
                            .map(|(j, contribution, weight)| {
                                json!({ "concept": f.bank.concepts[j], "contribution": contribution,
                                        "weight": weight, "z": z[j] })
                            })
                            .collect();
                        (proba, vec![("reasons", Value::Array(reasons))])
                    }
                };
                ClassifyRow {
                    file: r.file,
                    result: Ok(proba.into_iter().map(|p| p as f32).collect()),
                    extra: reasons,
                }
            }
        })
        .collect();
    let failed = rows.iter().filter(|r| r.result.is_err()).count();
    writer.write(&rows)?;
    let outcome = Outcome {
        scored: rows.len() - failed,
        failed,
        ..Outcome::default()
    };
    Ok(with_embedding_failures(outcome, embedded))
}

/// The first highest probability, as `predict`.
fn argmax(p: &[f64]) -> usize {
    (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b })
}

pub fn explain(c: &ProbeExplainConfig, printer: &Printer) -> Result<Outcome> {
    let probe = load(&c.probe)?;
    let report = crate::probe::explain::explain(&probe, c.top, c.prior.as_deref(), &c.probe)?;
    let mut stdout = Sink::open(None, false, printer)?;
    match c.json.as_deref() {
        Some(p) if p == std::path::Path::new("-") => {
            stdout.write_chunk((serde_json::to_string_pretty(&report)? + "\n").as_bytes())?
        }
        Some(p) => {
            std::fs::write(p, serde_json::to_string_pretty(&report)? + "\n")
                .with_context(|| format!("cannot write --json {}", p.display()))?;
            stdout.write_chunk(crate::probe::explain::table(&report).as_bytes())?;
        }
        None => stdout.write_chunk(crate::probe::explain::table(&report).as_bytes())?,
    }
    Ok(Outcome {
        scored: probe.classes.len(),
        ..Outcome::default()
    })
}
