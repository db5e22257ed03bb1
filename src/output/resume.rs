//! `--resume`: reads what an earlier run left in `-o FILE`, keeps its successful rows (dropping
//! failed ones, to be retried, and a torn last line, if a kill cut one), and says which inputs
//! need no scoring again; once every check has passed, rewrites the file with just those rows
//! (temp file + rename). An input given twice has a row per occurrence, and is skipped as many
//! times as it has rows.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Inputs (as written in the `file` column) already scored, with how many rows each has.
pub type Done = HashMap<String, usize>;

/// The shape the existing file must have to be continued.
pub enum Layout<'a> {
    /// csv/tsv of `classify`: header `file,<labels>,error`.
    Delimited { delimiter: u8, labels: &'a [String] },
    /// jsonl of `classify`: `scores` keyed by exactly these labels.
    ClassifyJsonl { labels: &'a [String] },
    /// jsonl of `concepts`: `scores` keyed by exactly these concepts (no `top`).
    ConceptsJsonl { labels: &'a [String] },
    /// jsonl of `embed`: image lines are kept, text lines dropped (they are written again last).
    EmbedJsonl,
}

#[derive(Debug, Default)]
pub struct Resumed {
    /// Inputs already scored, and how many rows each has.
    pub done: Done,
    /// The kept file starts with a header row.
    pub has_header: bool,
    /// The file held rows (scored, failed or torn): an earlier run wrote it.
    pub had_rows: bool,
    /// The file's new content, when it differs from what is there.
    rewrite: Option<(PathBuf, Vec<u8>)>,
}

impl Resumed {
    /// Rewrites the file to the rows kept (nothing to do when it keeps them all).
    pub fn apply(&self) -> Result<()> {
        match &self.rewrite {
            Some((path, bytes)) => replace(path, bytes),
            None => Ok(()),
        }
    }

    pub fn rows_kept(&self) -> usize {
        self.done.values().sum()
    }
}

/// Reads `path` as this command's output; writes nothing (see [`Resumed::apply`]).
pub fn read(path: &Path, layout: Layout) -> Result<Resumed> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Resumed::default()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {} to resume", path.display()))
        }
    };
    // Rows are written whole, one batch per write; should a kill still cut the last one, it
    // ends without a newline and is scored again.
    let complete = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&bytes[..0], |i| &bytes[..=i]);
    let (kept, mut resumed) = match layout {
        Layout::Delimited { delimiter, labels } => delimited(complete, delimiter, labels),
        Layout::ClassifyJsonl { labels } => jsonl(complete, Some((labels, true))),
        Layout::ConceptsJsonl { labels } => jsonl(complete, Some((labels, false))),
        Layout::EmbedJsonl => jsonl(complete, None),
    }
    .with_context(|| {
        format!(
            "cannot resume {}: it is not an output of this command",
            path.display()
        )
    })?;
    resumed.had_rows |= complete.len() != bytes.len();
    if kept.len() != bytes.len() {
        resumed.rewrite = Some((path.to_path_buf(), kept));
    }
    Ok(resumed)
}

fn delimited(bytes: &[u8], delimiter: u8, labels: &[String]) -> Result<(Vec<u8>, Resumed)> {
    let mut resumed = Resumed::default();
    if bytes.is_empty() {
        return Ok((Vec::new(), resumed));
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(bytes);
    let expected: Vec<&str> = std::iter::once("file")
        .chain(labels.iter().map(String::as_str))
        .chain(["error"])
        .collect();
    let header: Vec<String> = reader.headers()?.iter().map(String::from).collect();
    if header != expected {
        bail!("its header is {header:?}, this run writes {expected:?}");
    }
    let mut out = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(Vec::new());
    out.write_record(&header)?;
    resumed.has_header = true;
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("row {}", i + 2))?;
        resumed.had_rows = true;
        if record.len() != expected.len() {
            bail!(
                "row {} has {} fields, not {}",
                i + 2,
                record.len(),
                expected.len()
            );
        }
        let scored = record.get(expected.len() - 1).is_some_and(str::is_empty);
        if scored {
            *resumed.done.entry(record[0].to_string()).or_default() += 1;
            out.write_record(&record)?;
        }
    }
    Ok((out.into_inner().map_err(|e| e.into_error())?, resumed))
}

/// `labels`: the score columns, and whether rows carry `top` (classify) or not (concepts);
/// `None` for embed's lines.
fn jsonl(bytes: &[u8], labels: Option<(&[String], bool)>) -> Result<(Vec<u8>, Resumed)> {
    let mut resumed = Resumed::default();
    let mut kept = Vec::with_capacity(bytes.len());
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value =
            serde_json::from_slice(line).with_context(|| format!("line {} is not JSON", i + 1))?;
        let has = |k: &str| v.get(k).is_some();
        let shape_ok = match labels {
            Some((_, top)) => has("file") && has("scores") && (has("top") || !top) && has("error"),
            None => (has("file") || has("text")) && has("embedding"),
        };
        if !shape_ok {
            bail!("line {} does not have this command's fields", i + 1);
        }
        resumed.had_rows = true;
        let Some(file) = v.get("file").and_then(Value::as_str) else {
            continue; // an `embed` text line: written again at the end of this run
        };
        let scored = match labels {
            Some((labels, _)) => {
                v.get("error").is_some_and(Value::is_null) && scores_match(&v, labels, i)?
            }
            None => v.get("embedding").is_some_and(Value::is_array),
        };
        if scored {
            *resumed.done.entry(file.to_string()).or_default() += 1;
            kept.extend_from_slice(line);
        }
    }
    Ok((kept, resumed))
}

fn scores_match(v: &Value, labels: &[String], line: usize) -> Result<bool> {
    let Some(scores) = v.get("scores").and_then(Value::as_object) else {
        bail!("line {} has no scores", line + 1);
    };
    if !scores.keys().eq(labels.iter()) {
        bail!(
            "line {} scores labels {:?}, this run {:?}",
            line + 1,
            scores.keys().collect::<Vec<_>>(),
            labels
        );
    }
    Ok(true)
}

/// Writes `bytes` beside `path` and renames it over, so a crash leaves the old or the new file.
fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.whyxray-resume"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot rewrite {} to resume", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn csv_keeps_scored_rows_and_drops_failed_and_torn_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("out.csv");
        std::fs::write(
            &p,
            "file,a,b,error\nx.png,0.5,0.5,\nbad.png,,,cannot decode\ny.png,0.2,0.8,\nz.png,0.1",
        )
        .unwrap();
        let r = read(
            &p,
            Layout::Delimited {
                delimiter: b',',
                labels: &labels(),
            },
        )
        .unwrap();
        assert!(r.has_header && r.had_rows);
        assert_eq!(
            r.done,
            Done::from([("x.png".to_string(), 1), ("y.png".to_string(), 1)])
        );
        assert!(
            std::fs::read_to_string(&p).unwrap().contains("bad.png"),
            "read writes nothing"
        );
        r.apply().unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "file,a,b,error\nx.png,0.5,0.5,\ny.png,0.2,0.8,\n"
        );
    }

    #[test]
    fn refuses_a_file_with_other_labels() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("out.csv");
        std::fs::write(&p, "file,a,c,error\n").unwrap();
        assert!(read(
            &p,
            Layout::Delimited {
                delimiter: b',',
                labels: &labels()
            }
        )
        .is_err());
        let j = tmp.path().join("out.jsonl");
        std::fs::write(
            &j,
            "{\"file\":\"x\",\"scores\":{\"b\":0.5,\"a\":0.5},\"top\":\"a\",\"error\":null}\n",
        )
        .unwrap();
        assert!(read(&j, Layout::ClassifyJsonl { labels: &labels() }).is_err());
    }

    #[test]
    fn jsonl_keeps_scored_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("out.jsonl");
        let ok = "{\"file\":\"x\",\"scores\":{\"a\":0.5,\"b\":0.5},\"top\":\"a\",\"error\":null}\n";
        let bad = "{\"file\":\"y\",\"scores\":null,\"top\":null,\"error\":\"boom\"}\n";
        std::fs::write(&p, format!("{ok}{ok}{bad}{{\"file\":\"z\",\"sc")).unwrap();
        let r = read(&p, Layout::ClassifyJsonl { labels: &labels() }).unwrap();
        assert_eq!(
            r.done,
            Done::from([("x".to_string(), 2)]),
            "one row per occurrence"
        );
        r.apply().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{ok}{ok}"));
    }

    #[test]
    fn refuses_the_other_command_s_jsonl() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("feats.jsonl");
        std::fs::write(&p, "{\"file\":\"x\",\"embedding\":[0.5]}\n").unwrap();
        assert!(read(&p, Layout::ClassifyJsonl { labels: &labels() }).is_err());
        assert_eq!(
            std::fs::read_to_string(&p).unwrap().lines().count(),
            1,
            "left untouched"
        );
        let c = tmp.path().join("scores.jsonl");
        let line =
            "{\"file\":\"x\",\"scores\":{\"a\":1.0,\"b\":0.0},\"top\":\"a\",\"error\":null}\n";
        std::fs::write(&c, line).unwrap();
        assert!(read(&c, Layout::EmbedJsonl).is_err());
    }

    #[test]
    fn a_missing_file_starts_fresh() {
        let r = read(
            Path::new("/nonexistent/whyxray/out.csv"),
            Layout::EmbedJsonl,
        )
        .unwrap();
        assert!(r.done.is_empty() && !r.has_header && !r.had_rows);
    }
}
