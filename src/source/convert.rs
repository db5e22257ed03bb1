//! The `.bin` -> `.safetensors` conversion cache: the PyTorch zip is slow to read (2.4 s more
//! per cold start for ViT-L/14), so the first run writes its tensors as safetensors under
//! `$WHYXRAY_CACHE` (else `$XDG_CACHE_HOME/whyxray`, else `~/.cache/whyxray`) and later runs read
//! that. The key covers the `.bin`'s real path, size, modification and change times and inode.

use anyhow::{Context, Result};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("WHYXRAY_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("whyxray")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("whyxray")))
}

/// Where the converted copy of `bin` lives (whether or not it exists yet).
pub fn converted_path(bin: &Path) -> Option<PathBuf> {
    let h = crate::fnv1a64(file_key(bin)?.as_bytes());
    Some(
        cache_dir()?
            .join("converted")
            .join(format!("{h:016x}.safetensors")),
    )
}

/// What a file's cached derivatives are keyed by: its real path, size, modification and change
/// times and inode. ctime and the inode change on any rewrite, even one that restores mtime
/// (cp -p, rsync -t).
pub fn file_key(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(path).ok()?;
    let m = std::fs::metadata(&real).ok()?;
    Some(format!(
        "{}\0{}\0{}.{}\0{}.{}\0{}:{}",
        real.display(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.dev(),
        m.ino()
    ))
}

/// Writes the checked state dict to `dest` (temp file + rename, so concurrent runs are safe).
pub fn save(tensors: &HashMap<String, Tensor>, dest: &Path) -> Result<()> {
    let dir = dest.parent().context("cache path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dest.with_extension(format!("tmp.{}.{nanos}", std::process::id()));
    let write = || -> Result<()> {
        candle_core::safetensors::save(tensors, &tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dest)
            .with_context(|| format!("cannot rename into {}", dest.display()))
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp); // a full disk must not keep a gigabyte of half file
    }
    result
}
