//! The Hugging Face hub cache, laid out as Python's huggingface_hub writes it
//! (`models--org--name/{refs/<rev>, snapshots/<sha>/<file> -> ../../blobs/<hash>}`), read
//! directly, and hf-hub (ureq + rustls) for downloads when something is missing.

use super::{ModelFiles, ModelRequest, CONFIG_FILE, HUB_WEIGHTS};
use crate::printer::Printer;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// huggingface_hub's order: `HF_HUB_CACHE`, the legacy `HUGGINGFACE_HUB_CACHE`,
/// `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`, `~/.cache/huggingface/hub`.
pub fn hub_cache_dir() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("HF_HUB_CACHE").or_else(|| var("HUGGINGFACE_HUB_CACHE")) {
        return p;
    }
    if let Some(home) = var("HF_HOME") {
        return home.join("hub");
    }
    let cache =
        var("XDG_CACHE_HOME").unwrap_or_else(|| var("HOME").unwrap_or_default().join(".cache"));
    cache.join("huggingface").join("hub")
}

/// `HF_HUB_OFFLINE` as huggingface_hub reads it: 1, ON, YES or TRUE, any case.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_uppercase().as_str(),
                "1" | "ON" | "YES" | "TRUE"
            )
        })
        .unwrap_or(false)
}

pub fn is_repo_id(s: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !part.starts_with(['-', '.'])
            && !part.contains("--")
            && !part.contains("..")
    };
    matches!(s.split_once('/'), Some((org, name)) if ok(org) && ok(name))
}

fn is_commit_sha(rev: &str) -> bool {
    rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit())
}

fn repo_dir(cache: &Path, id: &str) -> PathBuf {
    cache.join(format!("models--{}", id.replace('/', "--")))
}

/// The snapshot a revision points at in the cache: a commit sha names its own snapshot (no
/// refs file needed); a branch or tag goes through `refs/<rev>`.
fn cached_snapshot(
    cache: &Path,
    id: &str,
    rev: &str,
) -> std::result::Result<(String, PathBuf), PathBuf> {
    let repo = repo_dir(cache, id);
    let commit = if is_commit_sha(rev) {
        rev.to_ascii_lowercase()
    } else {
        let refs = repo.join("refs").join(rev);
        match std::fs::read_to_string(&refs) {
            Ok(c) if is_commit_sha(c.trim()) => c.trim().to_string(),
            _ => return Err(refs),
        }
    };
    let snapshot = repo.join("snapshots").join(&commit);
    if snapshot.is_dir() {
        Ok((commit, snapshot))
    } else {
        Err(snapshot)
    }
}

/// The config and first available weights of a cached snapshot; `Err` names what is missing.
fn cached_files(cache: &Path, id: &str, rev: &str) -> std::result::Result<ModelFiles, PathBuf> {
    let (commit, snapshot) = cached_snapshot(cache, id, rev)?;
    let config = snapshot.join(CONFIG_FILE);
    if !config.is_file() {
        return Err(config);
    }
    let weights = HUB_WEIGHTS
        .iter()
        .map(|f| snapshot.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| snapshot.join(HUB_WEIGHTS[HUB_WEIGHTS.len() - 1]))?;
    Ok(ModelFiles::new(
        id.to_string(),
        Some(commit),
        config,
        weights,
    ))
}

pub fn resolve(id: &str, req: &ModelRequest, printer: &Printer) -> Result<ModelFiles> {
    if !is_repo_id(id) {
        bail!("{id:?} is not a valid hub repo id (expected `org/name`)");
    }
    let cache = hub_cache_dir();
    // Cached files are used without asking the hub, so a scored folder never waits on the
    // network; pass `--revision <sha>` or clear the cache to pick up a newer upload.
    let missing = match cached_files(&cache, id, &req.revision) {
        Ok(files) => return Ok(files),
        Err(missing) => missing,
    };
    if req.offline {
        bail!(
            "model {id} (revision {}) is not in the Hugging Face cache and offline mode is on \
             (--offline or HF_HUB_OFFLINE): looked for {}",
            req.revision,
            missing.display()
        );
    }
    printer.note(format_args!(
        "downloading model {id} (revision {}) into {}",
        req.revision,
        cache.display()
    ));
    download(&cache, id, req).with_context(|| {
        format!(
            "cannot download model {id} (revision {}) into {}; if it is already on this machine, \
             point HF_HUB_CACHE at its cache or pass --model <directory>",
            req.revision,
            cache.display()
        )
    })
}

fn download(cache: &Path, id: &str, req: &ModelRequest) -> Result<ModelFiles> {
    use hf_hub::{api::sync::ApiBuilder, Repo, RepoType};
    let mut builder = ApiBuilder::from_env()
        .with_cache_dir(cache.to_path_buf())
        .with_progress(req.progress)
        .with_user_agent("whyxray", env!("CARGO_PKG_VERSION"));
    if let Ok(token) = std::env::var("HF_TOKEN") {
        builder = builder.with_token(Some(token));
    }
    let api = builder.build()?;
    let repo = api.repo(Repo::with_revision(
        id.to_string(),
        RepoType::Model,
        req.revision.clone(),
    ));
    let info = repo.info().context("cannot list the repo's files")?;
    let weights_name = HUB_WEIGHTS
        .iter()
        .find(|w| info.siblings.iter().any(|s| s.rfilename == **w))
        .with_context(|| format!("repo {id} has neither {}", HUB_WEIGHTS.join(" nor ")))?;
    let config = repo
        .get(CONFIG_FILE)
        .with_context(|| format!("downloading {CONFIG_FILE}"))?;
    let weights = repo
        .get(weights_name)
        .with_context(|| format!("downloading {weights_name}"))?;
    Ok(ModelFiles::new(
        id.to_string(),
        Some(info.sha),
        config,
        weights,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        assert!(is_repo_id("yyupenn/whyxrayclip"));
        assert!(is_repo_id("laion/CLIP-ViT-L-14-laion2B-s32B-b82K"));
        for bad in [
            "whyxrayclip",
            "a/b/c",
            "/abs",
            "a/",
            "../x",
            "a--b/c",
            "a/..",
        ] {
            assert!(!is_repo_id(bad), "{bad}");
        }
    }

    #[test]
    fn commit_revision_needs_no_refs_file() {
        let tmp = tempfile::tempdir().unwrap();
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let snap = repo_dir(tmp.path(), "o/n").join("snapshots").join(sha);
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join(CONFIG_FILE), "{}").unwrap();
        std::fs::write(snap.join("open_clip_pytorch_model.bin"), "x").unwrap();
        let files = cached_files(tmp.path(), "o/n", sha).unwrap();
        assert_eq!(files.commit.as_deref(), Some(sha));
        assert!(files.weights.ends_with("open_clip_pytorch_model.bin"));
        let missing = cached_files(tmp.path(), "o/n", "main").unwrap_err();
        assert!(missing.ends_with("refs/main"), "{}", missing.display());
    }
}
