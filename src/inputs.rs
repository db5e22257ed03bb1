//! Inputs: the INPUT arguments (files, directories, `-` for paths on stdin) expanded into the
//! ordered list of files to score. A path that cannot be read stays in the list, so it gets its
//! own error row instead of vanishing.

use crate::image::decode::EXTENSIONS;
use anyhow::{Context, Result};
use std::io::BufRead;
use std::path::Path;

/// One entry per file to score, as the user will see it in the `file` column.
pub fn expand(args: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.context("cannot read paths from stdin")?;
                let path = line.trim_end_matches('\r');
                if !path.is_empty() {
                    push_path(path, &mut out);
                }
            }
        } else {
            push_path(arg, &mut out);
        }
    }
    Ok(out)
}

fn push_path(path: &str, out: &mut Vec<String>) {
    if Path::new(path).is_dir() {
        walk(path, out);
    } else {
        out.push(path.to_string());
    }
}

/// Recursive, sorted by file name, supported extensions only (any case); symlinks followed,
/// loops reported by walkdir and skipped.
fn walk(dir: &str, out: &mut Vec<String>) {
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name();
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_file() && has_image_extension(e.path()) => {
                out.push(e.path().display().to_string());
            }
            Ok(_) => {}
            // An unreadable subdirectory becomes an error row naming it.
            Err(e) => out.push(
                e.path()
                    .map_or_else(|| dir.to_string(), |p| p.display().to_string()),
            ),
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

    #[test]
    fn directories_recurse_sorted_with_supported_extensions() {
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
        let got = expand(&[d.display().to_string()]).unwrap();
        let rel: Vec<_> = got
            .iter()
            .map(|p| p.strip_prefix(&format!("{}/", d.display())).unwrap())
            .collect();
        assert_eq!(rel, ["a.jpeg", "b/a.jpg", "b/c/z.PNG"]);
    }

    #[test]
    fn missing_files_stay_in_the_list() {
        assert_eq!(expand(&["nope.png".into()]).unwrap(), ["nope.png"]);
    }
}
