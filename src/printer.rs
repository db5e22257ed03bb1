//! Printer: the one place that decides what reaches stderr (notes, details, warnings, failures).
//! stdout is for results only and never written here.

use std::fmt::Display;
use std::io::Write;

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    quiet: bool,
    verbose: bool,
}

impl Printer {
    pub fn new(quiet: bool, verbose: bool) -> Self {
        Self {
            quiet,
            verbose: verbose && !quiet,
        }
    }

    /// Progress-like notes: hidden by `-q`.
    pub fn note(&self, msg: impl Display) {
        if !self.quiet {
            line(format_args!("whyxray: {msg}"));
        }
    }

    /// Only with `-v`.
    pub fn detail(&self, msg: impl Display) {
        if self.verbose {
            line(format_args!("whyxray: {msg}"));
        }
    }

    pub fn warn(&self, msg: impl Display) {
        if !self.quiet {
            line(format_args!("whyxray: warning: {msg}"));
        }
    }

    /// A failed input is always named, even with `-q`: scripts read it from stderr.
    pub fn failure(&self, file: &str, err: impl Display) {
        line(format_args!("whyxray: {file}: {err}"));
    }
}

fn line(args: std::fmt::Arguments) {
    // One write per line so lines from threads never interleave; a closed stderr is not fatal.
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("{args}\n").as_bytes());
}
