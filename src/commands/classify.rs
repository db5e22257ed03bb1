//! `whyxray classify`: labels -> text embeddings once; images streamed in batches ->
//! probability rows, written as each batch finishes.

use super::{embed_texts, for_each_batch};
use crate::cli::{ClassifyConfig, ClassifyFormat, LogitScale};
use crate::model::Clip;
use crate::output::resume::{self, Layout, Resumed};
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
    let mut writer = ClassifyWriter::new(c.format, c.labels.clone(), sink, resumed.has_header);
    // The header goes out now, so a run with no inputs (an empty shard) still writes one.
    writer.write(&[])?;
    for_each_batch(model, &c.run, resumed.done, printer, |batch| {
        let rows: Vec<ClassifyRow> = batch
            .into_iter()
            .map(|(input, emb)| ClassifyRow {
                file: input.path,
                result: emb.map(|img| probabilities(&img, &labels, scale)),
            })
            .collect();
        writer.write(&rows)
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
