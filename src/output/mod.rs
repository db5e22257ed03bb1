//! Output: scored rows -> the formats of shared/CLI.md, written to stdout or `-o FILE` one batch
//! of whole lines at a time (one write, then flush), so a reader never sees half a row.

mod classify;
mod embed;
pub mod npy;

pub use classify::{ClassifyRow, ClassifyWriter};
pub use embed::{EmbedItem, EmbedWriter};

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Sink {
    out: Box<dyn Write>,
    path: Option<PathBuf>,
}

impl Sink {
    pub fn open(path: Option<&Path>) -> Result<Self> {
        let out: Box<dyn Write> = match path {
            Some(p) => Box::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create output {}", p.display()))?,
            ),
            None => Box::new(std::io::stdout()),
        };
        Ok(Self {
            out,
            path: path.map(Path::to_path_buf),
        })
    }

    pub fn write_chunk(&mut self, bytes: &[u8]) -> Result<()> {
        let res = self.out.write_all(bytes).and_then(|()| self.out.flush());
        res.with_context(|| match &self.path {
            Some(p) => format!("cannot write {}", p.display()),
            None => "cannot write to stdout".to_string(),
        })
    }
}
