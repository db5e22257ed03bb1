//! Embed items -> jsonl (`{"file"|"text": ..., "embedding": [...]}`) or a float32 `.npy` matrix
//! with a `.paths.tsv` sidecar (failed images as rows of NaN, their error in the sidecar).

use super::npy::NpyWriter;
use super::Sink;
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

pub enum EmbedWriter {
    Jsonl(Sink),
    Npy { writer: NpyWriter, dim: usize },
}

impl EmbedWriter {
    pub fn write(&mut self, items: &[EmbedItem]) -> Result<()> {
        match self {
            EmbedWriter::Jsonl(sink) => {
                let mut buf = Vec::new();
                for item in items {
                    serde_json::to_writer(&mut buf, &json_item(item))?;
                    buf.push(b'\n');
                }
                sink.write_chunk(&buf)
            }
            EmbedWriter::Npy { writer, dim } => {
                let mut data = Vec::with_capacity(items.len() * *dim);
                let mut side = String::new();
                for item in items {
                    let (kind, name, row, err) = match item {
                        EmbedItem::Image {
                            file,
                            embedding: Ok(e),
                        } => ("image", file, Some(e), ""),
                        EmbedItem::Image {
                            file,
                            embedding: Err(e),
                        } => ("image", file, None, e.as_str()),
                        EmbedItem::Text { text, embedding } => ("text", text, Some(embedding), ""),
                    };
                    match row {
                        Some(r) => data.extend_from_slice(r),
                        None => data.extend(std::iter::repeat_n(f32::NAN, *dim)),
                    }
                    side.push_str(&format!(
                        "{kind}\t{}\t{}\n",
                        tsv_field(name),
                        tsv_field(err)
                    ));
                }
                writer.append(&data, &side)
            }
        }
    }
}

fn json_item(item: &EmbedItem) -> JsonItem<'_> {
    match item {
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
    }
}

/// Tabs and line breaks inside a name or message would break the sidecar's rows.
fn tsv_field(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}
