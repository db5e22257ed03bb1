//! Printer: the one place that decides what reaches stderr — notes, details, warnings, failed
//! inputs, the progress bar and the closing summary. stdout is for results only and never
//! written here.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Printer {
    quiet: bool,
    verbose: bool,
    /// The live progress bar, if any: lines are printed above it, not through it.
    bar: Arc<Mutex<Option<ProgressBar>>>,
}

impl Printer {
    pub fn new(quiet: bool, verbose: bool) -> Self {
        Self {
            quiet,
            verbose: verbose && !quiet,
            bar: Arc::default(),
        }
    }

    /// Bars show only on a terminal and without `-q`.
    pub fn shows_progress(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }

    /// Progress-like notes: hidden by `-q`.
    pub fn note(&self, msg: impl Display) {
        if !self.quiet {
            self.line(format_args!("whyxray: {msg}"));
        }
    }

    /// Only with `-v`.
    pub fn detail(&self, msg: impl Display) {
        if self.verbose {
            self.line(format_args!("whyxray: {msg}"));
        }
    }

    pub fn warn(&self, msg: impl Display) {
        if !self.quiet {
            self.line(format_args!("whyxray: warning: {msg}"));
        }
    }

    /// A failed input is always named, even with `-q`: scripts read it from stderr.
    pub fn failure(&self, file: &str, err: impl Display) {
        self.line(format_args!("whyxray: {file}: {err}"));
    }

    /// What a script must see even with `-q` (no input found, say).
    pub fn always(&self, msg: impl Display) {
        self.line(format_args!("whyxray: {msg}"));
    }

    /// Runs `write` (a write to stdout) with the progress bar lifted, so that when stdout and
    /// stderr are one terminal a result row never lands on the bar's line.
    pub fn suspend<T>(&self, write: impl FnOnce() -> T) -> T {
        match self.bar.lock().ok().as_deref().and_then(Option::as_ref) {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    fn line(&self, args: std::fmt::Arguments) {
        // One write per line so lines from threads never interleave; a closed stderr is not fatal.
        let text = format!("{args}\n");
        let write = || {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        };
        match self.bar.lock().ok().as_deref().and_then(Option::as_ref) {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// Starts the images bar (a spinner until the total is known).
    pub fn progress(&self, what: &'static str) -> Progress {
        let bar = if self.shows_progress() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(spinner_style(what));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar.clone());
        }
        Progress {
            bar,
            printer: self.clone(),
            what,
            start: Instant::now(),
            done: 0,
            failed: 0,
        }
    }
}

fn spinner_style(what: &str) -> ProgressStyle {
    let t = format!("{{spinner}} {{pos}} {what}, {{rate}}/s, {{elapsed}}");
    ProgressStyle::with_template(&t).map_or_else(|_| ProgressStyle::default_spinner(), with_rate)
}

fn bar_style(what: &str) -> ProgressStyle {
    let t = format!("{{bar:40}} {{pos}}/{{len}} {what}, {{rate}}/s, ETA {{eta}}");
    ProgressStyle::with_template(&t).map_or_else(|_| ProgressStyle::default_bar(), with_rate)
}

fn with_rate(style: ProgressStyle) -> ProgressStyle {
    style.with_key(
        "rate",
        |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.1}", s.per_sec());
        },
    )
}

/// Counts scored and failed inputs; draws the bar; prints the summary line at the end.
pub struct Progress {
    bar: ProgressBar,
    printer: Printer,
    what: &'static str,
    start: Instant,
    pub done: u64,
    pub failed: u64,
}

impl Progress {
    /// Called (from any thread) once discovery has counted every input.
    pub fn total_handle(&self) -> impl Fn(u64) + Send + 'static {
        let (bar, what) = (self.bar.clone(), self.what);
        move |total| {
            bar.set_length(total);
            bar.set_style(bar_style(what));
        }
    }

    pub fn add(&mut self, done: u64, failed: u64) {
        self.done += done;
        self.failed += failed;
        self.bar.inc(done + failed);
    }

    /// Clears the bar and prints `scored N, failed M in T s (R images/s)` unless `-q`.
    pub fn finish(self) {
        self.bar.finish_and_clear();
        if let Ok(mut slot) = self.printer.bar.lock() {
            *slot = None;
        }
        let secs = self.start.elapsed().as_secs_f64();
        let total = self.done + self.failed;
        let rate = if secs > 0.0 { total as f64 / secs } else { 0.0 };
        self.printer.note(format_args!(
            "scored {}, failed {}, in {secs:.1} s ({rate:.1} {}/s)",
            self.done, self.failed, self.what
        ));
    }
}
