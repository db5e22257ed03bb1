//! Classify rows -> table, csv, tsv or jsonl (`file,<labels>,error` / one object per input).

use super::Sink;
use crate::cli::ClassifyFormat;
use anyhow::Result;
use serde::Serialize;

/// One input's result: label probabilities in label order, or why it failed; and fields a
/// jsonl row carries besides (a concept probe's `reasons`).
pub struct ClassifyRow {
    pub file: String,
    pub result: std::result::Result<Vec<f32>, String>,
    pub extra: Vec<(&'static str, serde_json::Value)>,
}

impl ClassifyRow {
    pub fn new(file: String, result: std::result::Result<Vec<f32>, String>) -> Self {
        Self {
            file,
            result,
            extra: Vec::new(),
        }
    }

    pub fn failed(file: String, error: String) -> Self {
        Self::new(file, Err(error))
    }
}

pub struct ClassifyWriter {
    format: ClassifyFormat,
    labels: Vec<String>,
    sink: Sink,
    file_width: usize,
    started: bool,
    /// Rows are independent per-finding probabilities (`--multilabel`): said in each jsonl row.
    multilabel: bool,
}

impl ClassifyWriter {
    /// `started`: the output already holds the header (a resumed file).
    pub fn new(format: ClassifyFormat, labels: Vec<String>, sink: Sink, started: bool) -> Self {
        Self {
            format,
            labels,
            sink,
            file_width: 0,
            started,
            multilabel: false,
        }
    }

    pub fn multilabel(mut self, yes: bool) -> Self {
        self.multilabel = yes;
        self
    }

    pub fn write(&mut self, rows: &[ClassifyRow]) -> Result<()> {
        let mut buf = Vec::new();
        match self.format {
            ClassifyFormat::Csv => self.delimited(rows, b',', &mut buf)?,
            ClassifyFormat::Tsv => self.delimited(rows, b'\t', &mut buf)?,
            ClassifyFormat::Jsonl => self.jsonl(rows, &mut buf)?,
            ClassifyFormat::Table if rows.is_empty() && !self.started => return Ok(()),
            ClassifyFormat::Table => self.table(rows, &mut buf),
        }
        self.started = true;
        self.sink.write_chunk(&buf)
    }

    fn delimited(&self, rows: &[ClassifyRow], delimiter: u8, buf: &mut Vec<u8>) -> Result<()> {
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(buf);
        if !self.started {
            let header = std::iter::once("file")
                .chain(self.labels.iter().map(String::as_str))
                .chain(std::iter::once("error"));
            w.write_record(header)?;
        }
        for row in rows {
            let mut rec = vec![row.file.clone()];
            match &row.result {
                Ok(p) => rec.extend(
                    p.iter()
                        .map(|v| v.to_string())
                        .chain(std::iter::once(String::new())),
                ),
                Err(e) => rec.extend(
                    std::iter::repeat_n(String::new(), self.labels.len()).chain([e.clone()]),
                ),
            }
            w.write_record(&rec)?;
        }
        w.flush()?;
        Ok(())
    }

    fn jsonl(&self, rows: &[ClassifyRow], buf: &mut Vec<u8>) -> Result<()> {
        for row in rows {
            let extra: serde_json::Map<String, serde_json::Value> = row
                .extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            let line = match &row.result {
                Ok(p) => JsonRow {
                    file: &row.file,
                    scores: Some(Scores(&self.labels, p)),
                    top: Some(top(&self.labels, p)),
                    multilabel: self.multilabel.then_some(true),
                    extra,
                    error: None,
                },
                Err(e) => JsonRow {
                    file: &row.file,
                    scores: None,
                    top: None,
                    multilabel: self.multilabel.then_some(true),
                    extra,
                    error: Some(e),
                },
            };
            serde_json::to_writer(&mut *buf, &line)?;
            buf.push(b'\n');
        }
        Ok(())
    }

    /// Columns padded to their display width (wide characters count two). Rows stream, so the
    /// first batch sets the file column's width (40 columns at least); a longer name later is
    /// shortened in the middle (`/data/…/img_123.png`) rather than breaking the columns.
    /// csv/tsv/jsonl keep every name whole.
    fn table(&mut self, rows: &[ClassifyRow], buf: &mut Vec<u8>) {
        use std::fmt::Write;
        if rows.is_empty() {
            return; // the header waits for the first rows, which set the column's width
        }
        if self.file_width == 0 {
            self.file_width = rows
                .iter()
                .map(|r| width(&r.file))
                .max()
                .unwrap_or(0)
                .clamp(MIN_FILE_WIDTH, 100);
        }
        let fw = self.file_width;
        let col = |l: &String| width(l).max(6);
        let mut s = String::new();
        if !self.started {
            s.push_str(&pad_right("file", fw));
            for l in &self.labels {
                let _ = write!(s, "  {}", pad_left(l, col(l)));
            }
            s.push_str("  top\n");
        }
        for row in rows {
            s.push_str(&pad_right(&fit(&row.file, fw), fw));
            match &row.result {
                Ok(p) => {
                    for (l, v) in self.labels.iter().zip(p) {
                        let _ = write!(s, "  {}", pad_left(&format!("{v:.4}"), col(l)));
                    }
                    let _ = writeln!(s, "  {}", top(&self.labels, p));
                }
                Err(e) => {
                    let _ = writeln!(s, "  error: {e}");
                }
            }
        }
        buf.extend_from_slice(s.as_bytes());
    }
}

/// The file column is at least this wide, so that a first batch of short names leaves room
/// for longer ones later.
const MIN_FILE_WIDTH: usize = 40;

/// Terminal columns `s` takes.
fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

fn pad_right(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

fn pad_left(s: &str, w: usize) -> String {
    format!("{}{s}", " ".repeat(w.saturating_sub(width(s))))
}

/// `s` shortened to `w` columns by an ellipsis in the middle, keeping the end (the file name).
fn fit(s: &str, w: usize) -> String {
    if width(s) <= w {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    let cw = |c: &char| unicode_width::UnicodeWidthChar::width(*c).unwrap_or(0);
    let budget = w.saturating_sub(1);
    let (mut tail, mut used) = (Vec::new(), 0);
    for c in chars.iter().rev() {
        if used + cw(c) > budget * 2 / 3 {
            break;
        }
        used += cw(c);
        tail.push(*c);
    }
    let mut head = String::new();
    for c in &chars {
        if used + cw(c) > budget {
            break;
        }
        used += cw(c);
        head.push(*c);
    }
    tail.reverse();
    format!("{head}…{}", tail.into_iter().collect::<String>())
}

#[derive(Serialize)]
struct JsonRow<'a> {
    file: &'a str,
    scores: Option<Scores<'a>>,
    top: Option<&'a str>,
    /// Present (true) only in multi-label runs, whose scores do not sum to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    multilabel: Option<bool>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
    error: Option<&'a str>,
}

/// `{"<label>": <prob>, ...}` in label order, probabilities written as float32 (shortest form).
struct Scores<'a>(&'a [String], &'a [f32]);

impl Serialize for Scores<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().zip(self.1))
    }
}

/// The label with the highest probability (the first one on ties).
fn top<'a>(labels: &'a [String], probs: &[f32]) -> &'a str {
    let best = probs
        .iter()
        .enumerate()
        .fold(0, |best, (i, p)| if *p > probs[best] { i } else { best });
    &labels[best]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_wide_names_keep_the_columns() {
        assert_eq!(width("肺炎"), 4);
        assert_eq!(pad_right("肺炎", 6), "肺炎  ");
        let short = fit("/data/some/deep/folder/img_123.png", 20);
        assert_eq!(width(&short), 20, "{short}");
        assert!(
            short.ends_with("img_123.png") && short.contains('…'),
            "{short}"
        );
        let wide = fit("胸部写真胸部写真胸部写真.png", 11);
        assert!(width(&wide) <= 11, "{wide}");
    }
}
