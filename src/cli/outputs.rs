//! Command line, outputs: where results go (`-o FILE`, `-o -` for stdout, a device such as
//! /dev/null), the format an output's extension names, the sidecars beside it, and the guard
//! that refuses, before anything is opened for writing, an output that is one of the run's
//! inputs or that cannot be written.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, Read};
use std::path::{Component, Path, PathBuf};

/// `-o -` means stdout; `None` (no `-o`) too.
pub fn output_path(given: Option<PathBuf>) -> Option<PathBuf> {
    given.filter(|p| p.as_os_str() != "-")
}

/// The formats an output file's extension names (any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ext {
    Csv,
    Tsv,
    Jsonl,
    Npy,
}

impl Ext {
    pub fn of(path: &Path) -> Option<Ext> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" => Ext::Csv,
            "tsv" => Ext::Tsv,
            "jsonl" => Ext::Jsonl,
            "npy" => Ext::Npy,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Ext::Csv => "csv",
            Ext::Tsv => "tsv",
            Ext::Jsonl => "jsonl",
            Ext::Npy => "npy",
        }
    }
}

/// The format of a run: `--format` if given (it must agree with a known extension of `-o`),
/// else the one `-o`'s extension names, else `default`. `to_ext` says which extension a
/// format goes with (`None`: any, as a table); a known extension the command cannot write is
/// an error naming what it can.
pub fn pick_format<F: Copy + std::fmt::Debug + PartialEq>(
    given: Option<F>,
    output: Option<&Path>,
    formats: &[(Ext, F)],
    default: impl FnOnce() -> F,
) -> Result<F> {
    let ext = output.and_then(|p| Ext::of(p).map(|e| (p, e)));
    let from_ext = match ext {
        Some((p, e)) => match formats.iter().find(|(x, _)| *x == e) {
            Some(&(_, f)) => Some(f),
            None => bail!(
                "-o {}: this command does not write {} (it writes {})",
                p.display(),
                e.name(),
                formats
                    .iter()
                    .map(|(x, _)| x.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        None => None,
    };
    match (given, from_ext, ext) {
        (Some(g), Some(f), Some((p, e))) if g != f => bail!(
            "--format {} contradicts -o {} (a .{} name): drop --format, or name the file to match",
            format!("{g:?}").to_lowercase(),
            p.display(),
            e.name()
        ),
        (Some(g), _, _) => Ok(g),
        (None, Some(f), _) => Ok(f),
        (None, None, _) => Ok(default()),
    }
}

/// A path that is a stream rather than a file to keep: an existing FIFO, socket or device,
/// or anything under /dev or /proc. Nothing is written beside it (no meta sidecar).
pub fn is_stream(path: &Path) -> bool {
    let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
    special || path.starts_with("/dev") || path.starts_with("/proc")
}

/// `NAME` + `suffix` beside it: every sidecar is named by appending to the output's whole
/// file name (`feats.npy` -> `feats.npy.meta.json`, `feats.npy.paths.tsv`).
pub fn sidecar(output: &Path, suffix: &str) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The provenance record's path: `--meta FILE`, none with `--no-meta`, else `OUT.meta.json`
/// beside a file output (not beside stdout or a device, where it could not be kept).
pub fn meta_for(
    given: Option<PathBuf>,
    no_meta: bool,
    output: Option<&Path>,
) -> Result<Option<PathBuf>> {
    match (given, no_meta) {
        (Some(_), true) => bail!("--meta FILE and --no-meta contradict each other"),
        (Some(p), false) if p.as_os_str() == "-" => {
            bail!("--meta -: stdout carries the results only; give the record a file")
        }
        (Some(p), false) => Ok(Some(p)),
        (None, true) => Ok(None),
        (None, false) => Ok(output
            .filter(|o| !is_stream(o))
            .map(|o| sidecar(o, ".meta.json"))),
    }
}

/// What a run reads and writes, for [`Guard::check`].
#[derive(Debug, Default)]
pub struct Guard {
    /// (how it was given, path): files the run reads.
    reads: Vec<(String, PathBuf)>,
    /// Directories searched for images.
    dirs: Vec<PathBuf>,
    /// Lists of image paths (`--files-from`), whose entries are inputs too.
    lists: Vec<PathBuf>,
    /// (how it was given, path): files the run creates or appends to.
    writes: Vec<(String, PathBuf)>,
    /// Results or a report go to stdout.
    stdout: bool,
}

impl Guard {
    pub fn read(&mut self, what: &str, path: &Path) -> &mut Self {
        self.reads.push((what.to_string(), path.to_path_buf()));
        self
    }

    /// INPUT arguments: files are reads, directories are searched, `-` is stdin.
    pub fn inputs(&mut self, args: &[String], files_from: &[PathBuf]) -> &mut Self {
        for a in args.iter().filter(|a| *a != "-") {
            let p = Path::new(a);
            if p.is_dir() {
                self.dirs.push(p.to_path_buf());
            } else {
                self.read("input", p);
            }
        }
        for f in files_from {
            self.read("--files-from", f);
            self.lists.push(f.clone());
        }
        self
    }

    /// An output: a file, or stdout (`None`).
    pub fn write(&mut self, what: &str, path: Option<&Path>) -> &mut Self {
        match path {
            Some(p) => self.writes.push((what.to_string(), p.to_path_buf())),
            None => self.stdout = true,
        }
        self
    }

    /// A file written only when there is one (a meta record, a sidecar).
    pub fn write_opt(&mut self, what: &str, path: Option<&Path>) -> &mut Self {
        if let Some(p) = path {
            self.writes.push((what.to_string(), p.to_path_buf()));
        }
        self
    }

    /// A local model directory's config and weights are read too.
    pub fn model(&mut self, model: &crate::source::ModelRequest) -> &mut Self {
        let dir = model
            .model
            .strip_prefix("local-dir:")
            .unwrap_or(&model.model);
        let dir = Path::new(dir);
        if dir.is_dir() {
            let names =
                std::iter::once(&crate::source::CONFIG_FILE).chain(crate::source::LOCAL_WEIGHTS);
            for name in names {
                let f = dir.join(name);
                if f.is_file() {
                    self.read("the model's", &f);
                }
            }
        }
        self
    }

    /// Refuses (a usage error) an output that is an input however spelled, two outputs that
    /// are one file, an output that cannot be created, an existing image about to be
    /// overwritten, and a closed stdout.
    pub fn check(&self) -> Result<()> {
        if self.stdout {
            check_stdout()?;
        }
        self.check_lists()?;
        for (i, (what, out)) in self.writes.iter().enumerate() {
            let shown = || format!("{what} {}", out.display());
            for (other, path) in &self.writes[..i] {
                if same_file(out, path) {
                    bail!(
                        "{} is also {other} {}: two outputs cannot share a file",
                        shown(),
                        path.display()
                    );
                }
            }
            for (input, path) in &self.reads {
                if same_file(out, path) {
                    bail!(
                        "{} is one of the inputs ({input} {}): refusing to overwrite it",
                        shown(),
                        path.display()
                    );
                }
            }
            if crate::inputs::has_image_extension(out) {
                let resolved = resolve(out);
                if let Some(dir) = self.dirs.iter().find(|d| resolved.starts_with(resolve(d))) {
                    bail!(
                        "{} is inside the input directory {}, where it would be read as an image: \
                         write it elsewhere",
                        shown(),
                        dir.display()
                    );
                }
            }
            if let Some(format) = image_signature(out) {
                bail!(
                    "{} is an existing {format} image: whyxray never overwrites images (is it an \
                     input?); choose another output name",
                    shown()
                );
            }
            check_writable(out).with_context(shown)?;
        }
        Ok(())
    }

    /// Entries of `--files-from` lists are inputs too. Only an entry with an output's file
    /// name can name it (short of a link under another name, which an image's signature
    /// still catches), so a 400k-line list costs a read, not a stat per line.
    fn check_lists(&self) -> Result<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        for list in &self.lists {
            let Ok(meta) = std::fs::metadata(list) else {
                continue;
            };
            if !meta.is_file() {
                continue; // a pipe can be read once only: its entries are not known yet
            }
            let file = std::fs::File::open(list)
                .with_context(|| format!("cannot open --files-from {}", list.display()))?;
            for line in std::io::BufReader::new(file).split(b'\n') {
                let line =
                    line.with_context(|| format!("cannot read --files-from {}", list.display()))?;
                let entry = String::from_utf8_lossy(&line);
                let entry = Path::new(entry.trim_end_matches(['\r', '\0']));
                for (what, out) in &self.writes {
                    if out.file_name() == entry.file_name() && same_file(out, entry) {
                        bail!(
                            "{what} {} is one of the inputs (listed in --files-from {}): refusing \
                             to overwrite it",
                            out.display(),
                            list.display()
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

/// A run started with stdout closed (`>&-`) would lose every result and exit 0: Rust's runtime
/// quietly points a closed descriptor 1 at /dev/null before `main`. The binary records whether
/// descriptor 1 was open before that (`STDOUT_CLOSED_AT_START`).
fn check_stdout() -> Result<()> {
    if crate::STDOUT_CLOSED_AT_START.load(std::sync::atomic::Ordering::Relaxed) {
        bail!("stdout is closed: there is nowhere to write the results (give -o FILE)");
    }
    Ok(())
}

/// The same file, however spelled: the same resolved path (links and `..` followed, the
/// parent resolved for a file not made yet), or the same inode (a hard link).
pub fn same_file(a: &Path, b: &Path) -> bool {
    if resolve(a) == resolve(b) {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    false
}

/// An absolute path with links resolved as far as the path exists, and `.`/`..` removed.
fn resolve(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    let abs = std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p));
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => match dir.canonicalize() {
            Ok(d) => d.join(name),
            Err(_) => lexical(&abs),
        },
        _ => lexical(&abs),
    }
}

fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The image format an existing regular file starts with, if any (what whyxray would decode).
fn image_signature(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut head = [0u8; 132];
    let mut file = std::fs::File::open(path).ok()?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    crate::image::decode::sniff(&head[..n])
}

/// Fails now, with the cause, where creating or appending to `path` would fail later: a
/// missing or non-directory parent, a directory in its place, no write permission.
fn check_writable(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => bail!("it is a directory"),
        Ok(_) => access_w(path),
        Err(_) => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            match std::fs::metadata(parent) {
                Ok(m) if m.is_dir() => access_w(parent),
                Ok(_) => bail!("{} is not a directory", parent.display()),
                Err(_) => bail!("directory {} does not exist", parent.display()),
            }
        }
    }
}

#[cfg(unix)]
fn access_w(path: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        let e = std::io::Error::last_os_error();
        bail!("cannot write to {}: {e}", path.display());
    }
    Ok(())
}

#[cfg(not(unix))]
fn access_w(_: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_pick_formats_and_contradictions_are_refused() {
        #[derive(Debug, Clone, Copy, PartialEq)]
        enum F {
            Csv,
            Jsonl,
        }
        let fs = [(Ext::Csv, F::Csv), (Ext::Jsonl, F::Jsonl)];
        let pick = |g, o: &str| pick_format(g, Some(Path::new(o)), &fs, || F::Csv);
        assert_eq!(pick(None, "x.JSONL").unwrap(), F::Jsonl);
        assert_eq!(pick(None, "x.txt").unwrap(), F::Csv);
        assert_eq!(pick(Some(F::Jsonl), "x.txt").unwrap(), F::Jsonl);
        assert!(pick(Some(F::Csv), "x.jsonl").is_err());
        assert!(pick(None, "x.npy").is_err());
    }

    #[test]
    fn spellings_of_one_file_are_the_same_file() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a.png");
        std::fs::write(&a, b"x").unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::os::unix::fs::symlink(&a, tmp.path().join("link.png")).unwrap();
        std::fs::hard_link(&a, tmp.path().join("hard.png")).unwrap();
        for other in ["d/../a.png", "./a.png", "link.png", "hard.png"] {
            assert!(same_file(&a, &tmp.path().join(other)), "{other}");
        }
        assert!(same_file(
            &tmp.path().join("new.csv"),
            &tmp.path().join("d/../new.csv")
        ));
        assert!(!same_file(&a, &tmp.path().join("b.png")));
    }
}
