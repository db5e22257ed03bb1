//! Model source (identity): what a model *is*, whatever it was called on the command line —
//! the SHA-256 of its weights file and of its config — so that a probe, a resumed output or a
//! meta record written with `--model yyupenn/whyxrayclip` matches the same files given as the
//! hub snapshot directory or a copy. A hub download's weights are content-addressed already
//! (an LFS blob is named by its SHA-256); other files are hashed once, and the digest cached
//! under the conversion cache's key (path, size, times, inode).

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub weights_sha256: String,
    pub config_sha256: String,
}

pub fn identify(config: &Path, weights: &Path) -> Result<Identity> {
    Ok(Identity {
        weights_sha256: weights_sha256(weights)?,
        config_sha256: hex(&Sha256::digest(
            std::fs::read(config).with_context(|| format!("cannot read {}", config.display()))?,
        )),
    })
}

/// A hub cache blob's name when it is a SHA-256 (LFS files), else the file hashed (cached).
fn weights_sha256(path: &Path) -> Result<String> {
    if let Some(name) = std::fs::canonicalize(path)
        .ok()
        .filter(|real| real.parent().is_some_and(|d| d.ends_with("blobs")))
        .and_then(|real| real.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Ok(name.to_ascii_lowercase());
    }
    let cached = super::convert::file_key(path).and_then(|key| {
        let h = crate::fnv1a64(key.as_bytes());
        let file = super::convert::cache_dir()?
            .join("sha256")
            .join(format!("{h:016x}.txt"));
        Some((key, file))
    });
    if let Some((key, file)) = &cached {
        if let Some(digest) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| {
                t.strip_prefix(&format!("{key}\n"))
                    .map(|d| d.trim().to_string())
            })
            .filter(|d| d.len() == 64)
        {
            return Ok(digest);
        }
    }
    let digest = hash_file(path)?;
    if let Some((key, file)) = cached {
        let _ = save(&file, &format!("{key}\n{digest}\n"));
    }
    Ok(digest)
}

fn hash_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Temp file + rename, so that concurrent runs never read half a digest.
fn save(dest: &PathBuf, text: &str) -> std::io::Result<()> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = dest.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A local directory that is a snapshot of the Hugging Face cache
/// (`.../models--org--name/snapshots/<sha>`): the repo id and commit it holds.
pub fn hub_snapshot(dir: &Path) -> Option<(String, String)> {
    let real = std::fs::canonicalize(dir).ok()?;
    let sha = real.file_name()?.to_str()?;
    let snapshots = real.parent()?;
    let repo = snapshots.parent()?.file_name()?.to_str()?;
    let id = repo.strip_prefix("models--")?.replacen("--", "/", 1);
    let is_sha = sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit());
    (snapshots.file_name()? == "snapshots" && is_sha && super::hub::is_repo_id(&id))
        .then(|| (id, sha.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_hashed_and_blobs_named_by_their_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("w.bin");
        std::fs::write(&f, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hash_file(&f).unwrap(), abc);
        let blobs = tmp.path().join("blobs");
        std::fs::create_dir(&blobs).unwrap();
        let named = "0".repeat(64);
        std::fs::write(blobs.join(&named), b"not hashed").unwrap();
        std::os::unix::fs::symlink(blobs.join(&named), tmp.path().join("link")).unwrap();
        assert_eq!(weights_sha256(&tmp.path().join("link")).unwrap(), named);
    }

    #[test]
    fn a_hub_snapshot_directory_names_its_repo_and_commit() {
        let tmp = tempfile::tempdir().unwrap();
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let snap = tmp
            .path()
            .join("models--yyupenn--whyxrayclip/snapshots")
            .join(sha);
        std::fs::create_dir_all(&snap).unwrap();
        assert_eq!(
            hub_snapshot(&snap),
            Some(("yyupenn/whyxrayclip".to_string(), sha.to_string()))
        );
        assert_eq!(hub_snapshot(tmp.path()), None);
    }
}
