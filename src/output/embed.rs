//! Embed items -> jsonl (`{"file"|"text": ..., "embedding": [...]}`) or a float32 `.npy` matrix
//! (failed images as rows of NaN).

use super::{npy, Sink};
use crate::cli::EmbedFormat;
use anyhow::Result;
use serde::Serialize;

pub enum EmbedItem {
    Image {
        file: String,
        embedding: std::result::Result<Vec<f32>, String>,
    },
    Text {
        text: String,
        embedding: Vec<f32>,
    },
}

/// One jsonl line; f32 slices serialise in float32's shortest form.
#[derive(Serialize)]
struct JsonItem<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    embedding: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

pub struct EmbedWriter {
    format: EmbedFormat,
    sink: Sink,
    dim: usize,
}

impl EmbedWriter {
    /// `rows`: the total number of items, needed up front by the npy header.
    pub fn new(format: EmbedFormat, mut sink: Sink, rows: usize, dim: usize) -> Result<Self> {
        if format == EmbedFormat::Npy {
            sink.write_chunk(&npy::header(rows, dim))?;
        }
        Ok(Self { format, sink, dim })
    }

    pub fn write(&mut self, items: &[EmbedItem]) -> Result<()> {
        let mut buf = Vec::new();
        for item in items {
            match self.format {
                EmbedFormat::Jsonl => {
                    let line = match item {
                        EmbedItem::Image { file, embedding } => JsonItem {
                            file: Some(file),
                            text: None,
                            embedding: embedding.as_deref().ok(),
                            error: embedding.as_ref().err().map(String::as_str),
                        },
                        EmbedItem::Text { text, embedding } => JsonItem {
                            file: None,
                            text: Some(text),
                            embedding: Some(embedding),
                            error: None,
                        },
                    };
                    serde_json::to_writer(&mut buf, &line)?;
                    buf.push(b'\n');
                }
                EmbedFormat::Npy => {
                    let nan = vec![f32::NAN; self.dim];
                    let row = match item {
                        EmbedItem::Image {
                            embedding: Ok(e), ..
                        }
                        | EmbedItem::Text { embedding: e, .. } => e,
                        EmbedItem::Image {
                            embedding: Err(_), ..
                        } => &nan,
                    };
                    buf.extend(row.iter().flat_map(|v| v.to_le_bytes()));
                }
            }
        }
        self.sink.write_chunk(&buf)
    }
}
