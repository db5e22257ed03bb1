//! Index (file): an embedding matrix as `embed -o FEATS.npy` writes it — the float32 npy,
//! memory-mapped so that a 400k x 768 index is read in place, never copied; its
//! `FEATS.npy.paths.tsv` sidecar (which rows are images, which failed, their paths); and its
//! `FEATS.npy.meta.json` record (the model that made it).

use crate::output::meta::read_model;
use anyhow::{bail, Context, Result};
use memmap2::Mmap;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};

pub struct EmbeddingFile {
    pub path: PathBuf,
    map: Mmap,
    /// Byte offset of row 0.
    offset: usize,
    pub rows: usize,
    pub dim: usize,
    /// Image rows that embedded (text rows and failed images are never matched).
    pub usable: Vec<bool>,
    /// Where each row's line starts in the sidecar, to read back only the names wanted.
    lines: Vec<u64>,
    sidecar: PathBuf,
    /// The `model` record of the run that made it.
    pub model: Value,
}

impl EmbeddingFile {
    pub fn open(path: &Path) -> Result<Self> {
        let meta = crate::cli::sidecar(path, ".meta.json");
        if !meta.is_file() {
            bail!(
                "{} has no {}: nothing says which model made these embeddings (export them \
                 with `whyxray embed ... -o {}`, which writes it)",
                path.display(),
                meta.display(),
                path.display()
            );
        }
        let model = read_model(&meta)?;
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: the map is read-only; a file truncated under us by another process would
        // fault the reads, as it would for any reader of an npy being rewritten.
        let map = unsafe { Mmap::map(&file) }
            .with_context(|| format!("cannot map {}", path.display()))?;
        let (offset, rows, dim) = header(&map)
            .with_context(|| format!("{}: not a float32 [rows, dim] npy file", path.display()))?;
        let need = offset + rows * dim * 4;
        if map.len() < need {
            bail!(
                "{} is truncated: its header declares {rows} rows of {dim}, it holds {} bytes of \
                 the {} needed (export it again)",
                path.display(),
                map.len(),
                need
            );
        }
        let sidecar = sidecar_path(path);
        let (usable, lines) = read_sidecar(&sidecar, path, rows)?;
        Ok(Self {
            path: path.to_path_buf(),
            map,
            offset,
            rows,
            dim,
            usable,
            lines,
            sidecar,
            model,
        })
    }

    /// Rows `start..end`, flat: borrowed from the map when aligned for f32, else copied.
    pub fn block(&self, start: usize, end: usize) -> Cow<'_, [f32]> {
        let bytes = &self.map[self.offset + start * self.dim * 4..self.offset + end * self.dim * 4];
        // SAFETY: every bit pattern is a valid f32; `align_to` only yields an aligned middle.
        let (head, floats, _) = unsafe { bytes.align_to::<f32>() };
        if head.is_empty() && floats.len() * 4 == bytes.len() {
            Cow::Borrowed(floats)
        } else {
            Cow::Owned(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )
        }
    }

    /// Every row's sidecar fields (kind, item, error), in row order.
    pub fn sidecar_rows(&self) -> Result<Vec<(String, String, String)>> {
        let text = crate::read_text(&self.sidecar)?;
        Ok(text
            .lines()
            .skip(1)
            .take(self.rows)
            .map(|l| {
                let mut f = l.split('\t').map(str::to_string);
                let mut next = || f.next().unwrap_or_default();
                (next(), next(), next())
            })
            .collect())
    }

    /// The paths of `rows`, read back from the sidecar line by line.
    pub fn names(&self, rows: &BTreeSet<usize>) -> Result<HashMap<usize, String>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(&self.sidecar)
            .with_context(|| format!("cannot read {}", self.sidecar.display()))?;
        let mut out = HashMap::with_capacity(rows.len());
        for &row in rows {
            let (start, end) = (self.lines[row], self.lines[row + 1]);
            let mut line = vec![0u8; (end - start) as usize];
            file.seek(SeekFrom::Start(start))
                .and_then(|_| file.read_exact(&mut line))
                .with_context(|| format!("cannot read {}", self.sidecar.display()))?;
            let text = String::from_utf8_lossy(&line);
            let name = text.trim_end_matches(['\n', '\r']).split('\t').nth(1);
            out.insert(row, name.unwrap_or("").to_string());
        }
        Ok(out)
    }
}

/// (data offset, rows, dim) from an npy v1/v2/v3 header of a C-order little-endian float32
/// matrix.
fn header(bytes: &[u8]) -> Result<(usize, usize, usize)> {
    if bytes.get(..6) != Some(b"\x93NUMPY") {
        bail!("no npy magic");
    }
    let major = *bytes.get(6).context("short file")?;
    let (len, start) = match major {
        1 => (
            u16::from_le_bytes(bytes.get(8..10).context("short file")?.try_into()?) as usize,
            10,
        ),
        2 | 3 => (
            u32::from_le_bytes(bytes.get(8..12).context("short file")?.try_into()?) as usize,
            12,
        ),
        v => bail!("npy format version {v}"),
    };
    let text = std::str::from_utf8(bytes.get(start..start + len).context("short header")?)?;
    if !text.contains("'descr': '<f4'") || !text.contains("'fortran_order': False") {
        bail!("header {text:?} (whyxray reads little-endian float32, C order)");
    }
    let shape = text
        .split("'shape': (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .context("no shape")?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let [rows, dim] = dims[..] else {
        bail!("shape ({shape}) is not [rows, dim]")
    };
    Ok((start + len, rows, dim))
}

/// `FEATS.npy.paths.tsv`, or the `FEATS.paths.tsv` whyxray 0.1 wrote.
fn sidecar_path(path: &Path) -> PathBuf {
    let side = crate::output::npy::sidecar_path(path);
    if side.exists() || !path.with_extension("paths.tsv").exists() {
        side
    } else {
        path.with_extension("paths.tsv")
    }
}

/// Which rows are images that embedded (from the `kind` and `error` columns), and where each
/// row's line starts (one more entry: the end of the last).
fn read_sidecar(side: &Path, path: &Path, rows: usize) -> Result<(Vec<bool>, Vec<u64>)> {
    let ctx = || {
        format!(
            "cannot read {}, which names the rows of {}",
            side.display(),
            path.display()
        )
    };
    let file = std::fs::File::open(side).with_context(ctx)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut at = reader.read_until(b'\n', &mut line).with_context(ctx)? as u64; // header
    let (mut usable, mut lines) = (Vec::with_capacity(rows), Vec::with_capacity(rows + 1));
    while usable.len() < rows {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).with_context(ctx)?;
        if n == 0 {
            break;
        }
        lines.push(at);
        at += n as u64;
        let mut fields = line.split(|&b| b == b'\t');
        let kind = fields.next();
        let error = fields.nth(1).unwrap_or(b"");
        let error = error.strip_suffix(b"\n").unwrap_or(error);
        let error = error.strip_suffix(b"\r").unwrap_or(error);
        usable.push(kind == Some(b"image") && error.is_empty());
    }
    lines.push(at);
    if usable.len() < rows {
        bail!(
            "{} names {} rows, the array {} has {rows}",
            side.display(),
            usable.len(),
            path.display()
        );
    }
    Ok((usable, lines))
}
