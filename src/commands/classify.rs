//! `whyxray classify`: labels -> text embeddings once; images in batches -> probabilities rows.

use super::{embed_images, embed_texts};
use crate::cli::{ClassifyConfig, LogitScale};
use crate::inputs;
use crate::model::Clip;
use crate::output::{ClassifyRow, ClassifyWriter, Sink};
use crate::printer::Printer;
use crate::score::probabilities;
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
    let labels = embed_texts(model, &c.labels)?;
    let inputs = inputs::expand(&c.inputs)?;
    let width = inputs.iter().map(|f| f.chars().count()).max().unwrap_or(0);
    let mut writer = ClassifyWriter::new(
        c.format,
        c.labels.clone(),
        Sink::open(c.output.as_deref())?,
        width,
    );
    let mut outcome = Outcome::default();
    for batch in inputs.chunks(c.batch_size) {
        let rows: Vec<ClassifyRow> = embed_images(model, batch)?
            .into_iter()
            .zip(batch)
            .map(|(e, file)| ClassifyRow {
                file: file.clone(),
                result: e.map(|img| probabilities(&img, &labels, scale)),
            })
            .collect();
        for row in &rows {
            match &row.result {
                Ok(_) => outcome.scored += 1,
                Err(e) => {
                    outcome.failed += 1;
                    printer.failure(&row.file, e);
                }
            }
        }
        writer.write(&rows)?;
    }
    Ok(outcome)
}
