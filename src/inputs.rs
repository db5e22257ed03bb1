//! Inputs: INPUT arguments (files, directories, `-` for paths on stdin) and `--files-from` lists
//! -> a lazy, ordered stream of files to score, filtered by `--include`/`--exclude` and
//! `--shard`. Nothing is collected: a 400k-file tree starts scoring at once in flat memory.
//! A path that cannot be read stays in the stream, so it gets its own error row.

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

/// An item of the stream: a file to score, or a note for stderr (a symlink loop skipped).
#[derive(Debug)]
pub enum Found {
    Input(Input),
    Skipped(String),
}

/// The lazy stream of inputs, in command-line order. `stdin: false` leaves out `-` (used to
/// count the total in the background without consuming standard input).
pub fn discover(
    spec: &InputSpec,
    stdin: bool,
) -> impl Iterator<Item = Result<Found>> + Send + 'static {
    let spec = spec.clone();
    let lists = spec.files_from.clone().into_iter().map(List::File);
    let args = spec.args.clone().into_iter().map(List::Arg);
    args.chain(lists)
        .flat_map(move |list| list.entries(stdin))
        .flat_map(expand)
        .filter(move |item| match item {
            Ok((Found::Input(_), key)) => {
                spec.filter.keep(key) && spec.shard.is_none_or(|s| s.keeps(key))
            }
            _ => true,
        })
        .map(|item| item.map(|(found, _)| found))
}

/// A source of paths: one INPUT argument, or a `--files-from` list file.
enum List {
    Arg(String),
    File(PathBuf),
}

impl List {
    fn entries(self, stdin: bool) -> Box<dyn Iterator<Item = Result<String>> + Send> {
        match self {
            List::Arg(a) if a == "-" => {
                if !stdin {
                    return Box::new(std::iter::empty());
                }
                let lines = std::io::BufReader::new(std::io::stdin()).lines();
                Box::new(
                    lines
                        .map(|l| l.context("cannot read paths from stdin"))
                        .filter(non_empty),
                )
            }
            List::Arg(a) => Box::new(std::iter::once(Ok(a))),
            List::File(f) => match std::fs::File::open(&f) {
                Ok(file) => {
                    let name = f.display().to_string();
                    let lines = std::io::BufReader::new(file).lines();
                    Box::new(
                        lines
                            .map(move |l| {
                                l.with_context(|| format!("cannot read --files-from {name}"))
                            })
                            .filter(non_empty),
                    )
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

fn non_empty(line: &Result<String>) -> bool {
    line.as_ref()
        .map_or(true, |l| !l.trim_end_matches('\r').is_empty())
}

type Keyed = Result<(Found, String)>;

/// A path -> itself, or the image files below it when it is a directory; each with its key.
fn expand(path: Result<String>) -> Box<dyn Iterator<Item = Keyed> + Send> {
    let path = match path {
        Ok(p) => p.trim_end_matches('\r').to_string(),
        Err(e) => return Box::new(std::iter::once(Err(e))),
    };
    if !Path::new(&path).is_dir() {
        let input = Input {
            path: path.clone(),
            error: None,
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
            let path = e.path().unwrap_or(root).display().to_string();
            let key = e
                .path()
                .and_then(|p| p.strip_prefix(root).ok())
                .map_or(path.clone(), |p| p.to_string_lossy().into_owned());
            let msg = e
                .io_error()
                .map_or_else(|| e.to_string(), ToString::to_string);
            Some(Ok((
                Found::Input(Input {
                    path,
                    error: Some(format!("cannot read directory: {msg}")),
                }),
                key,
            )))
        }
    }
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
                Found::Skipped(_) => None,
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
