//! Inputs: INPUT arguments (files, directories, `-` for paths on stdin) and `--files-from` lists
//! -> a lazy, ordered stream of files to score, filtered by `--include`/`--exclude` and
//! `--shard`. Nothing is collected: a 400k-file tree starts scoring at once in flat memory.
//! A path that cannot be read stays in the stream, so it gets its own error row. Lists are
//! newline-separated, or NUL-separated with `-0/--null` (for `find -print0`).

use crate::image::decode::EXTENSIONS;
use anyhow::{bail, Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// What to score, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct InputSpec {
    pub args: Vec<String>,
    pub files_from: Vec<PathBuf>,
    pub filter: Filter,
    pub shard: Option<Shard>,
    /// `-0/--null`: lists (stdin, `--files-from`) are NUL-separated.
    pub null: bool,
}

/// `--include` / `--exclude` globs. A glob with a `/` matches the path (relative to the
/// directory given, for files found in one); one without matches the file name alone.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Option<(GlobSet, GlobSet)>,
    exclude: Option<(GlobSet, GlobSet)>,
}

impl Filter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        Ok(Self {
            include: compile(include, "--include")?,
            exclude: compile(exclude, "--exclude")?,
        })
    }

    /// Some `--include` or `--exclude` was given.
    pub fn is_active(&self) -> bool {
        self.include.is_some() || self.exclude.is_some()
    }

    fn keep(&self, rel: &str) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let hit = |(paths, names): &(GlobSet, GlobSet)| paths.is_match(rel) || names.is_match(name);
        self.include.as_ref().is_none_or(hit) && !self.exclude.as_ref().is_some_and(hit)
    }
}

/// Globs with a `/` in one set (matched against paths), the rest in another (file names).
fn compile(globs: &[String], flag: &str) -> Result<Option<(GlobSet, GlobSet)>> {
    if globs.is_empty() {
        return Ok(None);
    }
    let (mut paths, mut names) = (GlobSetBuilder::new(), GlobSetBuilder::new());
    for g in globs {
        let glob = Glob::new(g).with_context(|| format!("{flag} {g:?}"))?;
        if g.contains('/') {
            paths.add(glob)
        } else {
            names.add(glob)
        };
    }
    Ok(Some((paths.build()?, names.build()?)))
}

/// `--shard K/N`: keep the inputs whose key hashes to K modulo N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let parsed = s
            .split_once('/')
            .and_then(|(k, n)| Some((k.parse().ok()?, n.parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Self { index, count }),
            _ => bail!("--shard must be K/N with 0 <= K < N, got {s:?}"),
        }
    }
}

impl Shard {
    /// The key is the path relative to the directory it was found in (or as given), so every
    /// machine splits the same way whatever its mount point or discovery order.
    fn keeps(&self, key: &str) -> bool {
        crate::fnv1a64(key.as_bytes()) % self.count == self.index
    }
}

/// One file to score: the path as shown in outputs, and why it is already known to fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: String,
    pub error: Option<String>,
}

/// An item of the stream: a file to score, one that `--shard` leaves to another part (counted,
/// so that an empty shard is told from finding nothing), or a note for stderr (a symlink loop
/// skipped).
#[derive(Debug)]
pub enum Found {
    Input(Input),
    OtherShard,
    Skipped(String),
}

/// The lazy stream of inputs, in command-line order. `stdin: false` leaves out `-` (used to
/// count the total in the background without consuming standard input).
pub fn discover(
    spec: &InputSpec,
    stdin: bool,
) -> impl Iterator<Item = Result<Found>> + Send + 'static {
    let spec = spec.clone();
    let sep = if spec.null { b'\0' } else { b'\n' };
    let lists = spec.files_from.clone().into_iter().map(List::File);
    let args = spec.args.clone().into_iter().map(List::Arg);
    args.chain(lists)
        .flat_map(move |list| list.entries(stdin, sep))
        .flat_map(expand)
        .filter(move |item| match item {
            Ok((Found::Input(_), key)) => spec.filter.keep(key),
            _ => true,
        })
        .map(move |item| {
            item.map(|(found, key)| match found {
                Found::Input(_) if spec.shard.is_some_and(|s| !s.keeps(&key)) => Found::OtherShard,
                found => found,
            })
        })
}

/// A source of paths: one INPUT argument, or a `--files-from` list file.
enum List {
    Arg(String),
    File(PathBuf),
}

impl List {
    fn entries(self, stdin: bool, sep: u8) -> Box<dyn Iterator<Item = Result<String>> + Send> {
        match self {
            List::Arg(a) if a == "-" => {
                if !stdin {
                    return Box::new(std::iter::empty());
                }
                let reader = std::io::BufReader::new(std::io::stdin());
                Box::new(lines(reader, sep, "cannot read paths from stdin".into()))
            }
            List::Arg(a) => Box::new(std::iter::once(Ok(a))),
            List::File(f) => match std::fs::File::open(&f) {
                Ok(file) => {
                    let what = format!("cannot read --files-from {}", f.display());
                    Box::new(lines(std::io::BufReader::new(file), sep, what))
                }
                Err(e) => {
                    Box::new(std::iter::once(Err(e).with_context(|| {
                        format!("cannot open --files-from {}", f.display())
                    })))
                }
            },
        }
    }
}

/// The non-empty entries of a list, separated by `sep` (a trailing `\r` and a leading byte
/// order mark dropped).
fn lines(
    reader: impl BufRead + Send + 'static,
    sep: u8,
    what: String,
) -> impl Iterator<Item = Result<String>> + Send {
    reader.split(sep).enumerate().filter_map(move |(i, entry)| {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return Some(Err(anyhow::Error::new(e).context(what.clone()))),
        };
        let mut text = String::from_utf8_lossy(&entry).into_owned();
        if i == 0 {
            if let Some(rest) = text.strip_prefix('\u{feff}') {
                text = rest.to_string();
            }
        }
        let text = text.trim_end_matches('\r');
        (!text.is_empty()).then(|| Ok(text.to_string()))
    })
}

type Keyed = Result<(Found, String)>;

/// A path -> itself, or the image files below it when it is a directory; each with its key.
fn expand(path: Result<String>) -> Box<dyn Iterator<Item = Keyed> + Send> {
    let path = match path {
        Ok(p) => p,
        Err(e) => return Box::new(std::iter::once(Err(e))),
    };
    if !Path::new(&path).is_dir() {
        let input = Input {
            path: path.clone(),
            error: broken_link(Path::new(&path)),
        };
        return Box::new(std::iter::once(Ok((Found::Input(input), path))));
    }
    let root = PathBuf::from(&path);
    let walker = walkdir::WalkDir::new(&root)
        .follow_links(true)
        .sort_by_file_name();
    Box::new(
        walker
            .into_iter()
            .filter_map(move |entry| walk_entry(&root, entry)),
    )
}

/// Recursive, sorted by name, supported extensions only (any case); symlinked files followed,
/// symlink loops skipped with a note, unreadable directories kept as error rows.
fn walk_entry(root: &Path, entry: walkdir::Result<walkdir::DirEntry>) -> Option<Keyed> {
    match entry {
        Ok(e) if e.file_type().is_file() && has_image_extension(e.path()) => {
            let key = e
                .path()
                .strip_prefix(root)
                .unwrap_or(e.path())
                .to_string_lossy()
                .into_owned();
            Some(Ok((
                Found::Input(Input {
                    path: e.path().display().to_string(),
                    error: None,
                }),
                key,
            )))
        }
        Ok(_) => None,
        Err(e) if e.loop_ancestor().is_some() => {
            let at = e
                .path()
                .map_or_else(String::new, |p| p.display().to_string());
            Some(Ok((
                Found::Skipped(format!("{at}: symlink loop, not followed")),
                String::new(),
            )))
        }
        Err(e) => {
            let at = e.path().unwrap_or(root);
            let path = at.display().to_string();
            let key = e
                .path()
                .and_then(|p| p.strip_prefix(root).ok())
                .map_or(path.clone(), |p| p.to_string_lossy().into_owned());
            let msg = e
                .io_error()
                .map_or_else(|| e.to_string(), ToString::to_string);
            let error = broken_link(at).unwrap_or_else(|| format!("cannot read directory: {msg}"));
            Some(Ok((
                Found::Input(Input {
                    path,
                    error: Some(error),
                }),
                key,
            )))
        }
    }
}

/// "broken symbolic link ..." when `path` is a link to nothing (a plain "No such file" would
/// send the user looking for the link itself).
fn broken_link(path: &Path) -> Option<String> {
    let link = std::fs::symlink_metadata(path).ok()?;
    if !link.file_type().is_symlink() || path.exists() {
        return None;
    }
    let target = std::fs::read_link(path).ok()?;
    Some(format!(
        "broken symbolic link: it points to {}, which does not exist",
        target.display()
    ))
}

pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(spec: &InputSpec) -> Vec<String> {
        discover(spec, false)
            .filter_map(|f| match f.unwrap() {
                Found::Input(i) => Some(i.path),
                Found::OtherShard | Found::Skipped(_) => None,
            })
            .collect()
    }

    fn tree() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("b/c")).unwrap();
        for f in [
            "b/c/z.PNG",
            "b/a.jpg",
            "a.jpeg",
            "notes.txt",
            "b/c/y.dcm.bak",
        ] {
            std::fs::write(d.join(f), b"").unwrap();
        }
        tmp
    }

    fn rel(tmp: &tempfile::TempDir, spec: &InputSpec) -> Vec<String> {
        let prefix = format!("{}/", tmp.path().display());
        paths(spec)
            .iter()
            .map(|p| p.strip_prefix(&prefix).unwrap().to_string())
            .collect()
    }

    #[test]
    fn directories_recurse_sorted_with_supported_extensions() {
        let tmp = tree();
        let spec = InputSpec {
            args: vec![tmp.path().display().to_string()],
            ..Default::default()
        };
        assert_eq!(rel(&tmp, &spec), ["a.jpeg", "b/a.jpg", "b/c/z.PNG"]);
    }

    #[test]
    fn include_exclude_match_names_or_relative_paths() {
        let tmp = tree();
        let args = vec![tmp.path().display().to_string()];
        let spec = |inc: &[&str], exc: &[&str]| InputSpec {
            args: args.clone(),
            filter: Filter::new(
                &inc.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                &exc.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap(),
            ..Default::default()
        };
        assert_eq!(
            rel(&tmp, &spec(&["*.jpg", "*.jpeg"], &[])),
            ["a.jpeg", "b/a.jpg"]
        );
        assert_eq!(rel(&tmp, &spec(&[], &["b/**"])), ["a.jpeg"]);
        assert_eq!(rel(&tmp, &spec(&["b/*/*"], &[])), ["b/c/z.PNG"]);
    }

    #[test]
    fn shards_partition_the_inputs() {
        let args: Vec<String> = (0..200).map(|i| format!("img{i}.png")).collect();
        let all = paths(&InputSpec {
            args: args.clone(),
            ..Default::default()
        });
        let mut union = Vec::new();
        for k in 0..4 {
            let shard = Some(Shard { index: k, count: 4 });
            let part = paths(&InputSpec {
                args: args.clone(),
                shard,
                ..Default::default()
            });
            assert!(part.len() > 20, "shard {k} has {}", part.len());
            union.extend(part);
        }
        union.sort();
        let mut all_sorted = all.clone();
        all_sorted.sort();
        assert_eq!(union, all_sorted);
        assert!("3/4".parse::<Shard>().is_ok());
        for bad in ["4/4", "1", "a/b", "0/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_files_stay_in_the_stream() {
        let spec = InputSpec {
            args: vec!["nope.png".into()],
            ..Default::default()
        };
        assert_eq!(paths(&spec), ["nope.png"]);
    }

    #[test]
    fn symlink_loops_are_skipped_with_a_note() {
        let tmp = tree();
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("b/loop")).unwrap();
        let spec = InputSpec {
            args: vec![tmp.path().display().to_string()],
            ..Default::default()
        };
        let found: Vec<Found> = discover(&spec, false).map(Result::unwrap).collect();
        assert_eq!(
            found
                .iter()
                .filter(|f| matches!(f, Found::Input(_)))
                .count(),
            3
        );
        assert!(found
            .iter()
            .any(|f| matches!(f, Found::Skipped(s) if s.contains("symlink loop"))));
    }
}
