//! Output (concepts): per-image concept cosines -> csv/tsv (`file,<concept>...,error`, as
//! classify's), jsonl (`{"file", "scores", "top_concepts", "error"}`), a float32 npy with its
//! paths sidecar, or a table of each image's top concepts.

use super::classify::{ClassifyRow, ClassifyWriter};
use super::embed::{EmbedItem, EmbedWriter};
use super::Sink;
use anyhow::Result;
use serde::Serialize;

/// One image: its cosine with every concept and, with `--top`, the concepts ranked first
/// (index, cosine, z-score where there are reference statistics); or why it failed.
pub struct ConceptRow {
    pub file: String,
    pub result: std::result::Result<(Vec<f32>, Vec<Top>), String>,
}

pub struct Top {
    pub concept: usize,
    pub cosine: f32,
    pub z: Option<f64>,
}

pub enum ConceptWriter {
    Delimited(ClassifyWriter),
    Jsonl {
        sink: Sink,
        concepts: Vec<String>,
    },
    Table {
        sink: Sink,
        concepts: Vec<String>,
        started: bool,
    },
    Npy(EmbedWriter),
}

impl ConceptWriter {
    pub fn write(&mut self, rows: Vec<ConceptRow>) -> Result<()> {
        match self {
            ConceptWriter::Delimited(w) => {
                let rows: Vec<ClassifyRow> = rows
                    .into_iter()
                    .map(|r| ClassifyRow::new(r.file, r.result.map(|(c, _)| c)))
                    .collect();
                w.write(&rows)
            }
            ConceptWriter::Npy(w) => {
                let items: Vec<EmbedItem> = rows
                    .into_iter()
                    .map(|r| EmbedItem::Image {
                        file: r.file,
                        embedding: r.result.map(|(c, _)| c),
                    })
                    .collect();
                w.write(&items)
            }
            ConceptWriter::Jsonl { sink, concepts } => {
                let mut buf = Vec::new();
                for r in &rows {
                    let line = match &r.result {
                        Ok((cos, top)) => JsonRow {
                            file: &r.file,
                            scores: Some(Scores(concepts, cos)),
                            top_concepts: (!top.is_empty()).then(|| {
                                top.iter()
                                    .map(|t| JsonTop {
                                        concept: &concepts[t.concept],
                                        cosine: t.cosine,
                                        z: t.z,
                                    })
                                    .collect()
                            }),
                            error: None,
                        },
                        Err(e) => JsonRow {
                            file: &r.file,
                            scores: None,
                            top_concepts: None,
                            error: Some(e),
                        },
                    };
                    serde_json::to_writer(&mut buf, &line)?;
                    buf.push(b'\n');
                }
                sink.write_chunk(&buf)
            }
            ConceptWriter::Table {
                sink,
                concepts,
                started,
            } => {
                let mut s = String::new();
                if !*started && !rows.is_empty() {
                    s.push_str("file\ttop concepts (cosine; z against the reference statistics)\n");
                    *started = true;
                }
                for r in &rows {
                    s.push_str(&r.file);
                    match &r.result {
                        Ok((_, top)) => {
                            for t in top {
                                let z = t.z.map_or(String::new(), |z| format!(", z {z:+.2}"));
                                s.push_str(&format!(
                                    "\t{} ({:.4}{z})",
                                    concepts[t.concept], t.cosine
                                ));
                            }
                        }
                        Err(e) => s.push_str(&format!("\terror: {e}")),
                    }
                    s.push('\n');
                }
                sink.write_chunk(s.as_bytes())
            }
        }
    }
}

/// One jsonl line; float32 values are written in float32's shortest form.
#[derive(Serialize)]
struct JsonRow<'a> {
    file: &'a str,
    scores: Option<Scores<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_concepts: Option<Vec<JsonTop<'a>>>,
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonTop<'a> {
    concept: &'a str,
    cosine: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    z: Option<f64>,
}

/// `{"<concept>": <cosine>, ...}` in bank order.
struct Scores<'a>(&'a [String], &'a [f32]);

impl Serialize for Scores<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().zip(self.1))
    }
}
