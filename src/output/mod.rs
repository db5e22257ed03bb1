//! Output: scored rows -> the formats of shared/CLI.md, written to stdout or `-o FILE` one batch
//! of whole lines at a time (one write, then flush), so a reader never sees half a row; and
//! `--resume`, which reads back what an earlier run wrote.

pub mod classify;
pub mod concepts;
pub mod embed;
pub mod meta;
pub mod npy;
pub mod records;
pub mod resume;

pub use classify::{ClassifyRow, ClassifyWriter};
pub use embed::{EmbedItem, EmbedWriter};

use crate::printer::Printer;
use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// The reader of stdout went away (`whyxray ... | head`): the run ends quietly with exit 0.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed")]
pub struct StdoutClosed;

pub struct Sink {
    out: Box<dyn Write>,
    path: Option<PathBuf>,
    /// stdout on a terminal: rows are written with the progress bar lifted.
    terminal: Option<Printer>,
}

impl Sink {
    /// stdout, or FILE created afresh (`append: false`) or appended to (`--resume`).
    pub fn open(path: Option<&Path>, append: bool, printer: &Printer) -> Result<Self> {
        let out: Box<dyn Write> = match path {
            Some(p) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(append)
                    .truncate(!append)
                    .open(p)
                    .with_context(|| format!("cannot create output {}", p.display()))?;
                Box::new(file)
            }
            None => Box::new(std::io::stdout()),
        };
        let terminal = (path.is_none() && std::io::stdout().is_terminal()).then(|| printer.clone());
        Ok(Self {
            out,
            path: path.map(Path::to_path_buf),
            terminal,
        })
    }

    pub fn write_chunk(&mut self, bytes: &[u8]) -> Result<()> {
        let out = &mut self.out;
        let mut write = || out.write_all(bytes).and_then(|()| out.flush());
        let res = match &self.terminal {
            Some(printer) => printer.suspend(write),
            None => write(),
        };
        if self.path.is_none()
            && res
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return Err(StdoutClosed.into());
        }
        res.with_context(|| match &self.path {
            Some(p) => format!("cannot write {}", p.display()),
            None => "cannot write to stdout".to_string(),
        })
    }
}
