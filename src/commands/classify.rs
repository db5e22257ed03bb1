//! `whyxray classify`: labels -> prompts -> text embeddings once; images streamed in batches
//! -> probability rows (single-label softmax or per-finding multi-label), written as each
//! batch finishes; provenance beside them.

use super::{embed_texts, for_each_batch, resume_output};
use crate::cli::{ClassifyConfig, ClassifyFormat, LogitScale};
use crate::model::{Clip, Plan};
use crate::output::meta::{self, Meta};
use crate::output::resume::Layout;
use crate::output::{ClassifyRow, ClassifyWriter, Sink};
use crate::printer::Printer;
use crate::prompts::{token_warnings, ClassPrompts};
use crate::score::Scorer;
use crate::Outcome;
use anyhow::Result;

pub fn run(c: &ClassifyConfig, plan: &Plan, printer: &Printer) -> Result<Outcome> {
    check(c, plan, printer)?;
    let record = |model: Option<&Clip>| {
        let scale = match c.logit_scale {
            LogitScale::Fixed(s) => Some(s),
            LogitScale::Model => model.map(Clip::logit_scale),
        };
        meta::record(plan, model, "classify", &c.run, provenance(c, scale))
    };
    let (resumed, earlier) = resume_output(
        c.output.as_deref(),
        c.run.resume,
        layout(c),
        c.meta.as_deref(),
        || record(None),
        printer,
    )?;
    let model = plan.load()?;
    let scale = scale(c, &model);
    printer.detail(format_args!("{}: logit scale {scale}", plan.files.id));
    let scorer = scorer(c, &model, scale)?;
    resumed.apply()?;
    let sink = Sink::open(c.output.as_deref(), c.run.resume, printer)?;
    let mut writer = ClassifyWriter::new(c.format, c.labels.clone(), sink, resumed.has_header)
        .multilabel(c.multilabel);
    let meta = match &c.meta {
        Some(path) => Some(Meta::start(path, record(Some(&model))?, earlier)?),
        None => None,
    };
    // The header goes out now, so a run with no inputs (an empty shard) still writes one.
    writer.write(&[])?;
    let outcome = for_each_batch(&model, &c.run, resumed.done, printer, |batch| {
        let rows: Vec<ClassifyRow> = batch
            .into_iter()
            .map(|(input, emb)| ClassifyRow::new(input.path, emb.map(|img| scorer.score(&img))))
            .collect();
        writer.write(&rows)
    })?;
    if let Some(meta) = meta {
        meta.finish(&outcome)?;
    }
    Ok(outcome)
}

/// What the plan tells before the weights are read: prompts the tokenizer cuts or cannot
/// tell apart.
pub fn check(c: &ClassifyConfig, plan: &Plan, printer: &Printer) -> Result<()> {
    let tokenizer = crate::text::Tokenizer::bundled(plan.config.model.text.context_length)?;
    for w in token_warnings(&c.classes, &tokenizer) {
        printer.warn(w);
    }
    Ok(())
}

fn scale(c: &ClassifyConfig, model: &Clip) -> f32 {
    match c.logit_scale {
        LogitScale::Fixed(s) => s,
        LogitScale::Model => model.logit_scale(),
    }
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

/// The classify part of the record; `scale` is unknown (null) before the checkpoint is read
/// when it is the checkpoint's.
fn provenance(c: &ClassifyConfig, scale: Option<f32>) -> serde_json::Value {
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
