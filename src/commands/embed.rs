//! `whyxray embed`: images streamed in batches, then texts -> L2-normalised embeddings.

use super::{embed_texts, for_each_batch};
use crate::cli::{EmbedConfig, EmbedFormat};
use crate::model::Clip;
use crate::output::meta::Meta;
use crate::output::npy::NpyWriter;
use crate::output::resume::{self, Layout};
use crate::output::{EmbedItem, EmbedWriter, Sink};
use crate::printer::Printer;
use crate::source::ModelFiles;
use crate::Outcome;
use anyhow::{Context, Result};
use std::collections::HashSet;

pub fn run(
    c: &EmbedConfig,
    model: &Clip,
    files: &ModelFiles,
    printer: &Printer,
) -> Result<Outcome> {
    let dim = model.config.model.embed_dim;
    let mut done = HashSet::new();
    let mut writer = match (c.format, &c.output) {
        (EmbedFormat::Npy, Some(path)) => EmbedWriter::Npy {
            writer: NpyWriter::create(path, dim)?,
            dim,
        },
        (EmbedFormat::Npy, None) => anyhow::bail!("--format npy needs -o FILE"),
        (EmbedFormat::Jsonl, out) => {
            if let (Some(path), true) = (out, c.run.resume) {
                done = resume::prepare(path, Layout::EmbedJsonl)?.done;
                printer.note(format_args!(
                    "resuming: {} images already embedded",
                    done.len()
                ));
            }
            EmbedWriter::Jsonl(Sink::open(out.as_deref(), c.run.resume)?)
        }
    };
    let meta = match &c.meta {
        Some(path) => {
            let extra = serde_json::json!({ "embed": {
                "format": format!("{:?}", c.format).to_lowercase(),
                "output": c.output,
                "texts": c.texts,
                "normalised": "L2, float32",
            }});
            Some(Meta::start(path, "embed", model, files, &c.run, extra)?)
        }
        None => None,
    };
    let has_images = !c.run.inputs.args.is_empty() || !c.run.inputs.files_from.is_empty();
    let mut outcome = Outcome::default();
    if has_images {
        outcome = for_each_batch(model, &c.run, done, printer, |batch| {
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
        let items: Vec<EmbedItem> = embed_texts(model, &c.texts)
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
