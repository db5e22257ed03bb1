//! `whyxray embed`: images (in batches) then texts -> L2-normalised embeddings.

use super::{embed_images, embed_texts};
use crate::cli::EmbedConfig;
use crate::inputs;
use crate::model::Clip;
use crate::output::{EmbedItem, EmbedWriter, Sink};
use crate::printer::Printer;
use crate::Outcome;
use anyhow::Result;

pub fn run(c: &EmbedConfig, model: &Clip, printer: &Printer) -> Result<Outcome> {
    let images = if c.inputs.is_empty() {
        Vec::new()
    } else {
        inputs::expand(&c.inputs)?
    };
    let rows = images.len() + c.texts.len();
    let sink = Sink::open(c.output.as_deref())?;
    let mut writer = EmbedWriter::new(c.format, sink, rows, model.config.model.embed_dim)?;
    let mut outcome = Outcome::default();
    for batch in images.chunks(c.batch_size) {
        let items: Vec<EmbedItem> = embed_images(model, batch)?
            .into_iter()
            .zip(batch)
            .map(|(embedding, file)| {
                match &embedding {
                    Ok(_) => outcome.scored += 1,
                    Err(e) => {
                        outcome.failed += 1;
                        printer.failure(file, e);
                    }
                }
                EmbedItem::Image {
                    file: file.clone(),
                    embedding,
                }
            })
            .collect();
        writer.write(&items)?;
    }
    if !c.texts.is_empty() {
        let items: Vec<EmbedItem> = embed_texts(model, &c.texts)?
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
    Ok(outcome)
}
