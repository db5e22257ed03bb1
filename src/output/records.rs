//! Output (records): rows of named columns — search hits, duplicate pairs — as csv, tsv,
//! jsonl or an aligned table. Written whole: these results are complete before they are
//! written, so the table's columns fit every row.

use super::Sink;
use crate::cli::ClassifyFormat;
use anyhow::Result;
use serde_json::{Map, Value};

pub struct RecordWriter {
    format: ClassifyFormat,
    columns: Vec<&'static str>,
    sink: Sink,
}

impl RecordWriter {
    pub fn new(format: ClassifyFormat, columns: Vec<&'static str>, sink: Sink) -> Self {
        Self {
            format,
            columns,
            sink,
        }
    }

    /// The header (csv, tsv, table) and every row.
    pub fn write_all(&mut self, rows: &[Vec<Value>]) -> Result<()> {
        let bytes = match self.format {
            ClassifyFormat::Csv => self.delimited(rows, b',')?,
            ClassifyFormat::Tsv => self.delimited(rows, b'\t')?,
            ClassifyFormat::Jsonl => self.jsonl(rows)?,
            ClassifyFormat::Table => self.table(rows).into_bytes(),
        };
        self.sink.write_chunk(&bytes)
    }

    fn delimited(&self, rows: &[Vec<Value>], delimiter: u8) -> Result<Vec<u8>> {
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .from_writer(Vec::new());
        w.write_record(&self.columns)?;
        for row in rows {
            w.write_record(row.iter().map(text))?;
        }
        Ok(w.into_inner().map_err(|e| e.into_error())?)
    }

    fn jsonl(&self, rows: &[Vec<Value>]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for row in rows {
            let obj: Map<String, Value> = self
                .columns
                .iter()
                .map(|c| c.to_string())
                .zip(row.iter().cloned())
                .collect();
            serde_json::to_writer(&mut out, &obj)?;
            out.push(b'\n');
        }
        Ok(out)
    }

    /// Strings left-aligned, numbers right-aligned, by display width.
    fn table(&self, rows: &[Vec<Value>]) -> String {
        let width = |s: &str| unicode_width::UnicodeWidthStr::width(s);
        let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(text).collect()).collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|c| {
                cells
                    .iter()
                    .map(|r| width(&r[c]))
                    .chain([width(self.columns[c])])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let numeric: Vec<bool> = (0..self.columns.len())
            .map(|c| rows.iter().all(|r| r[c].is_number() || r[c].is_null()))
            .collect();
        let line = |vals: Vec<&str>| {
            let mut s = String::new();
            for (c, v) in vals.iter().enumerate() {
                let pad = " ".repeat(widths[c].saturating_sub(width(v)));
                if c > 0 {
                    s.push_str("  ");
                }
                if numeric[c] {
                    s.push_str(&pad);
                    s.push_str(v);
                } else {
                    s.push_str(v);
                    s.push_str(&pad);
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(self.columns.clone());
        for r in &cells {
            out += &line(r.iter().map(String::as_str).collect());
        }
        out
    }
}

/// A value as a field: strings as they are, null empty, numbers in their shortest form.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}
