//! whyxray: WhyXrayCLIP (open_clip ViT) natively in Rust. The pipeline, one module a stage:
//! `inputs` (which images) -> `pipeline` -> `image` (decode, preprocess) -> `model` (vision and text towers)
//! <- `text` (labels -> tokens); then `score` -> `output`; `eval`, `probe` and `index` (search,
//! duplicates) work on those outputs. `commands` wires them per subcommand.
//!
//! A research tool: not a medical device, not for diagnosis.

pub mod cli;
pub mod commands;
pub mod concepts;
pub mod eval;
pub mod explain;
pub mod image;
pub mod index;
pub mod inputs;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod printer;
pub mod probe;
pub mod prompts;
pub mod score;
pub mod source;
pub mod text;

/// Descriptor 1 was closed when the process started (set by the binary before Rust's runtime
/// reopens it on /dev/null, which would make every write to stdout vanish without an error).
pub static STDOUT_CLOSED_AT_START: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// How a run ended: failures decide exit 0 or 1; an interrupted run exits 130, one whose
/// inputs named no image at all exits 3.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub scored: usize,
    pub failed: usize,
    /// Stopped by Ctrl-C after writing the rows done so far (exit 130).
    pub interrupted: bool,
    /// The inputs named no image (an empty directory, nothing matching `--include`, an empty
    /// list): exit 3, so that a script tells it from a run that scored everything.
    pub nothing_found: bool,
}

impl Outcome {
    /// The documented exit status.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else if self.nothing_found {
            3
        } else if self.failed > 0 {
            1
        } else {
            0
        }
    }
}

/// Process-wide defaults, set before any thread starts: candle's CPU worker pool spins 25,000
/// times before parking between ops, which on a small model steals a tenth of the cores from
/// the decode threads; 1,000 costs the big model nothing. `CANDLE_BARRIER_POOL_SPIN_LIMIT`
/// set by the user wins.
pub fn runtime_defaults() {
    const VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(VAR).is_none() {
        std::env::set_var(VAR, "1000");
    }
}

/// A new directory only this process uses (mode 0700 on Unix), for temporary files that an
/// other user or another run must not be able to plant or clobber: `eval` and `probe` scoring
/// images on the spot keep their intermediate outputs there and remove it afterwards.
pub fn private_temp_dir(what: &str) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..100u32 {
        let dir = std::env::temp_dir().join(format!(
            "whyxray-{what}-{}-{nanos:x}-{attempt}",
            std::process::id()
        ));
        match builder.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    anyhow::bail!(
        "cannot create a temporary directory in {}",
        std::env::temp_dir().display()
    )
}

/// An error and its causes on one line, as `{:#}` prints them, but without a cause that its
/// caller's message already repeats (a network library that puts its source's text into its
/// own message would otherwise show the same DNS failure three times).
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// A text file the user gave (labels, prompts, truth, lists, records), without the UTF-8 byte
/// order mark some editors put first, which would otherwise become part of the first label.
pub fn read_text(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// FNV-1a, 64 bits: a hash fixed forever (unlike std's randomised one), for shard keys and
/// cache file names that must agree across machines and runs.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod fnv_tests {
    /// Shard keys must split the same way on every machine and in every release: these are
    /// FNV-1a 64 of the offset basis and prime in the spec, computed independently (Python).
    #[test]
    fn fnv1a64_is_pinned() {
        for (key, want) in [
            ("", 0xcbf2_9ce4_8422_2325_u64),
            ("a", 0xaf63_dc4c_8601_ec8c),
            ("sub/img00.png", 0x70f4_05a2_f77c_90f0),
            ("img0001.png", 0x6efe_b95a_34c4_427e),
            ("caf\u{e9}/x.dcm", 0x65fc_d863_b42c_4960),
        ] {
            assert_eq!(super::fnv1a64(key.as_bytes()), want, "{key:?}");
        }
    }
}
