//! NumPy `.npy` v1.0 for a C-order little-endian float32 matrix whose row count grows while it
//! is written: the header has a fixed size, so it is rewritten in place after every batch and a
//! killed run still leaves a file numpy loads (with the rows written so far).

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Header bytes, always `HEADER_LEN`: enough for any row count up to 20 digits.
pub const HEADER_LEN: usize = 128;

pub fn header(rows: u64, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((HEADER_LEN - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(HEADER_LEN - 1, b' ');
    out.push(b'\n');
    out
}

/// A whole float32 array of any shape as one npy file (v1.0, header padded to 64 bytes).
pub fn write_array(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let tuple = if dims.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({tuple}), }}");
    let len = (10 + dict.len() + 1).div_ceil(64) * 64;
    let mut out = Vec::with_capacity(len + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((len - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(len - 1, b' ');
    out.push(b'\n');
    data.iter()
        .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// The array file and its `.paths.tsv` sidecar (`kind`, `item`, `error` per row).
pub struct NpyWriter {
    file: File,
    sidecar: File,
    path: PathBuf,
    rows: u64,
    cols: usize,
}

/// `feats.npy` -> `feats.npy.paths.tsv` (appended, as every sidecar's name).
pub fn sidecar_path(path: &Path) -> PathBuf {
    crate::cli::sidecar(path, ".paths.tsv")
}

impl NpyWriter {
    pub fn create(path: &Path, cols: usize) -> Result<Self> {
        let mut file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(&header(0, cols))?;
        let side = sidecar_path(path);
        let mut sidecar =
            File::create(&side).with_context(|| format!("cannot create {}", side.display()))?;
        sidecar.write_all(b"kind\titem\terror\n")?;
        Ok(Self {
            file,
            sidecar,
            path: path.to_path_buf(),
            rows: 0,
            cols,
        })
    }

    /// Appends rows (data first, then the sidecar lines, then the header's new count).
    pub fn append(&mut self, data: &[f32], sidecar_lines: &str) -> Result<()> {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut write = || -> std::io::Result<()> {
            self.file.seek(SeekFrom::End(0))?;
            self.file.write_all(&bytes)?;
            self.sidecar.write_all(sidecar_lines.as_bytes())?;
            self.rows += (data.len() / self.cols) as u64;
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(&header(self.rows, self.cols))
        };
        write().with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_has_a_fixed_aligned_size() {
        for rows in [0, 3, u64::MAX] {
            let h = super::header(rows, 768);
            assert_eq!(h.len(), super::HEADER_LEN);
            assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
            let text = std::str::from_utf8(&h[10..]).unwrap();
            assert!(text.contains(&format!("'shape': ({rows}, 768)")) && text.ends_with('\n'));
        }
    }
}
