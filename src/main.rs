//! Entry point: parse the command line, run, map the outcome to the documented exit codes
//! (0 all scored, 1 some inputs failed, 2 fatal or usage, 130 stopped by Ctrl-C; a closed
//! stdout pipe exits 0).

use clap::Parser;
use mimalloc::MiMalloc;
use std::process::ExitCode;
use whyxray::cli::Cli;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    whyxray::runtime_defaults();
    let result = Cli::parse().into_config().and_then(whyxray::commands::run);
    match result {
        Ok(outcome) if outcome.interrupted => ExitCode::from(130),
        Ok(outcome) if outcome.failed > 0 => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("whyxray: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Only a closed stdout counts: an EPIPE on `-o fifo` or elsewhere is a real failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<whyxray::output::StdoutClosed>())
}
