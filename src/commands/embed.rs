//! `whyxray embed`: images streamed in batches, then texts -> L2-normalised embeddings.

use super::{embed_texts, for_each_batch, resume_output};
use crate::cli::{EmbedConfig, EmbedFormat};
use crate::model::{Clip, Plan};
use crate::output::meta::{self, Meta};
use crate::output::npy::NpyWriter;
use crate::output::resume::Layout;
use crate::output::{EmbedItem, EmbedWriter, Sink};
use crate::printer::Printer;
use crate::Outcome;
use anyhow::{Context, Result};

pub fn run(c: &EmbedConfig, plan: &Plan, printer: &Printer) -> Result<Outcome> {
    let tokenizer = crate::text::Tokenizer::bundled(plan.config.model.text.context_length)?;
    for w in c
        .texts
        .iter()
        .filter_map(|t| crate::prompts::cut_warning(t, &tokenizer))
    {
        printer.warn(w);
    }
    let record = |model: Option<&Clip>| {
        let extra = serde_json::json!({ "embed": {
            "format": format!("{:?}", c.format).to_lowercase(),
            "output": c.output,
            "texts": c.texts,
            "normalised": "L2, float32",
        }});
        meta::record(plan, model, "embed", &c.run, extra)
    };
    let (resumed, earlier) = resume_output(
        c.output.as_deref(),
        c.run.resume,
        Layout::EmbedJsonl,
        c.meta.as_deref(),
        || record(None),
        printer,
    )?;
    let model = plan.load()?;
    let dim = model.config.model.embed_dim;
    resumed.apply()?;
    let mut writer = match (c.format, &c.output) {
        (EmbedFormat::Npy, Some(path)) => EmbedWriter::Npy {
            writer: NpyWriter::create(path, dim)?,
            dim,
        },
        (EmbedFormat::Npy, None) => anyhow::bail!("--format npy needs -o FILE"),
        (EmbedFormat::Jsonl, out) => {
            EmbedWriter::Jsonl(Sink::open(out.as_deref(), c.run.resume, printer)?)
        }
    };
    let meta = match &c.meta {
        Some(path) => Some(Meta::start(path, record(Some(&model))?, earlier)?),
        None => None,
    };
    let has_images = !c.run.inputs.args.is_empty() || !c.run.inputs.files_from.is_empty();
    let mut outcome = Outcome::default();
    if has_images {
        outcome = for_each_batch(&model, &c.run, resumed.done, printer, |batch| {
            let items: Vec<EmbedItem> = batch
                .into_iter()
                .map(|(input, embedding)| EmbedItem::Image {
                    file: input.path,
                    embedding,
                })
                .collect();
            writer.write(&items)
        })?;
    }
    if !c.texts.is_empty() && !outcome.interrupted {
        let items: Vec<EmbedItem> = embed_texts(&model, &c.texts)
            .context("text tower")?
            .into_iter()
            .zip(&c.texts)
            .map(|(embedding, text)| EmbedItem::Text {
                text: text.clone(),
                embedding,
            })
            .collect();
        outcome.scored += items.len();
        writer.write(&items)?;
    }
    if let Some(meta) = meta {
        meta.finish(&outcome)?;
    }
    Ok(outcome)
}
