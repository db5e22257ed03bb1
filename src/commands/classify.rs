//! `whyxray classify`: labels -> prompts -> text embeddings once; images streamed in batches
//! -> probability rows (single-label softmax or per-finding multi-label), written as each
//! batch finishes; provenance beside them.

use super::{embed_texts, for_each_batch};
use crate::cli::{ClassifyConfig, ClassifyFormat, LogitScale};
use crate::model::Clip;
use crate::output::meta::Meta;
use crate::output::resume::{self, Layout, Resumed};
use crate::output::{ClassifyRow, ClassifyWriter, Sink};
use crate::printer::Printer;
use crate::prompts::ClassPrompts;
use crate::score::Scorer;
use crate::source::ModelFiles;
use crate::Outcome;
use anyhow::Result;

pub fn run(
    c: &ClassifyConfig,
    model: &Clip,
    files: &ModelFiles,
    printer: &Printer,
) -> Result<Outcome> {
    let scale = match c.logit_scale {
        LogitScale::Fixed(s) => s,
        LogitScale::Model => model.logit_scale(),
    };
    printer.detail(format_args!("{}: logit scale {scale}", files.id));
    let scorer = scorer(c, model, scale)?;
    let resumed = match (&c.output, c.run.resume) {
        (Some(path), true) => resume::prepare(path, layout(c))?,
        _ => Resumed::default(),
    };
    if !resumed.done.is_empty() {
        printer.note(format_args!(
            "resuming: {} inputs already scored",
            resumed.done.len()
        ));
    }
    let sink = Sink::open(c.output.as_deref(), c.run.resume)?;
    let mut writer = ClassifyWriter::new(c.format, c.labels.clone(), sink, resumed.has_header)
        .multilabel(c.multilabel);
    let meta = match &c.meta {
        Some(path) => Some(Meta::start(
            path,
            "classify",
            model,
            files,
            &c.run,
            provenance(c, scale),
        )?),
        None => None,
    };
    // The header goes out now, so a run with no inputs (an empty shard) still writes one.
    writer.write(&[])?;
    let outcome = for_each_batch(model, &c.run, resumed.done, printer, |batch| {
        let rows: Vec<ClassifyRow> = batch
            .into_iter()
            .map(|(input, emb)| ClassifyRow {
                file: input.path,
                result: emb.map(|img| scorer.score(&img)),
            })
            .collect();
        writer.write(&rows)
    })?;
    if let Some(meta) = meta {
        meta.finish(&outcome)?;
    }
    Ok(outcome)
}

/// Every distinct prompt through the text tower once, then grouped back per class and side.
fn scorer(c: &ClassifyConfig, model: &Clip, scale: f32) -> Result<Scorer> {
    let mut texts: Vec<String> = Vec::new();
    for p in c.classes.iter().flat_map(|c| c.pos.iter().chain(&c.neg)) {
        if !texts.contains(p) {
            texts.push(p.clone());
        }
    }
    let embedded = embed_texts(model, &texts)?;
    let lookup = |prompts: &[String]| -> Vec<Vec<f32>> {
        prompts
            .iter()
            .map(|p| embedded[texts.iter().position(|t| t == p).unwrap_or_default()].clone())
            .collect()
    };
    let pos = c.classes.iter().map(|k| lookup(&k.pos)).collect();
    let neg = c.classes.iter().map(|k| lookup(&k.neg)).collect();
    Ok(Scorer::new(pos, neg, c.ensemble, scale))
}

fn provenance(c: &ClassifyConfig, scale: f32) -> serde_json::Value {
    serde_json::json!({
        "classify": {
            "logit_scale": scale,
            "logit_scale_source": match c.logit_scale {
                LogitScale::Fixed(_) => "given",
                LogitScale::Model => "checkpoint",
            },
            "multilabel": c.multilabel,
            "rule": if c.multilabel {
                "per class softmax(S * [sim(pos), sim(neg)])[0]"
            } else {
                "softmax over classes of S * sim(pos)"
            },
            "ensemble": c.ensemble,
            "classes": c.classes.iter().collect::<Vec<&ClassPrompts>>(),
            "format": format!("{:?}", c.format).to_lowercase(),
            "output": c.output,
        }
    })
}

fn layout(c: &ClassifyConfig) -> Layout<'_> {
    match c.format {
        ClassifyFormat::Csv | ClassifyFormat::Table => Layout::Delimited {
            delimiter: b',',
            labels: &c.labels,
        },
        ClassifyFormat::Tsv => Layout::Delimited {
            delimiter: b'\t',
            labels: &c.labels,
        },
        ClassifyFormat::Jsonl => Layout::ClassifyJsonl { labels: &c.labels },
    }
}
