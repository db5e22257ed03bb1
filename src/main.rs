//! Entry point: parse the command line, run, map the outcome to the documented exit codes
//! (0 all scored, 1 some inputs failed, 2 fatal or usage, 3 no image found, 130 stopped by
//! Ctrl-C; a reader that closed the stdout pipe is a quiet 0).

use mimalloc::MiMalloc;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    whyxray::runtime_defaults();
    let result = whyxray::cli::parse().and_then(whyxray::commands::run);
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("whyxray: error: {}", whyxray::error_chain(&err));
            ExitCode::from(2)
        }
    }
}

/// Runs before Rust's runtime, which reopens a closed stdout on /dev/null: whether descriptor 1
/// was open at exec is only visible here (glibc runs `.init_array` entries before `main`).
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static CHECK_STDOUT: extern "C" fn() = {
    extern "C" fn check() {
        // SAFETY: F_GETFD on a descriptor number reads no memory; -1 means it is not open.
        let closed = unsafe { libc::fcntl(1, libc::F_GETFD) } == -1;
        whyxray::STDOUT_CLOSED_AT_START.store(closed, std::sync::atomic::Ordering::Relaxed);
    }
    check
};

/// Only a closed stdout counts: an EPIPE on `-o fifo` or elsewhere is a real failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<whyxray::output::StdoutClosed>())
}
