//! Model source: `--model` (hub id or local directory) + `--revision` -> the config and weights
//! files on disk, from the Hugging Face cache Python uses, downloading only when allowed.

pub mod convert;
mod hub;
pub mod identity;

use crate::printer::Printer;
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

pub use hub::{hub_cache_dir, offline_from_env};

pub const CONFIG_FILE: &str = "open_clip_config.json";
/// Weight files of a hub repo, in open_clip's order of preference.
pub const HUB_WEIGHTS: &[&str] = &["open_clip_model.safetensors", "open_clip_pytorch_model.bin"];
/// open_clip's `local-dir:` search order.
pub const LOCAL_WEIGHTS: &[&str] = &[
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
];

#[derive(Debug, Clone)]
pub struct ModelRequest {
    pub model: String,
    pub revision: String,
    pub offline: bool,
    /// Show download progress bars (stderr is a terminal and not `--quiet`).
    pub progress: bool,
}

/// Where a model's files are, and what they are, for provenance.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// Hub repo id (also for a directory that is a hub cache snapshot), or the directory as
    /// given.
    pub id: String,
    /// The hub commit the files come from; `None` for a local directory.
    pub commit: Option<String>,
    pub config: PathBuf,
    pub weights: PathBuf,
    identity: Arc<OnceLock<identity::Identity>>,
    /// The digests being computed in the background (`start_identity`).
    pending: Arc<Mutex<Option<JoinHandle<Result<identity::Identity>>>>>,
}

impl ModelFiles {
    pub fn new(id: String, commit: Option<String>, config: PathBuf, weights: PathBuf) -> Self {
        Self {
            id,
            commit,
            config,
            weights,
            identity: Arc::default(),
            pending: Arc::default(),
        }
    }

    /// Starts computing the digests on another thread: a local weights file hashed for the
    /// first time (2 s for ViT-L/14) is then read while the weights load, not after.
    pub fn start_identity(&self) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        if pending.is_none() && self.identity.get().is_none() {
            let (config, weights) = (self.config.clone(), self.weights.clone());
            *pending = std::thread::Builder::new()
                .name("whyxray-sha256".into())
                .spawn(move || identity::identify(&config, &weights))
                .ok();
        }
    }

    /// The content digests of the config and weights (computed once, when first asked for).
    pub fn identity(&self) -> Result<&identity::Identity> {
        if let Some(i) = self.identity.get() {
            return Ok(i);
        }
        let started = self.pending.lock().ok().and_then(|mut p| p.take());
        let i = match started {
            Some(handle) => handle
                .join()
                .map_err(|_| anyhow::anyhow!("hashing the model files failed"))??,
            None => identity::identify(&self.config, &self.weights)?,
        };
        Ok(self.identity.get_or_init(|| i))
    }
}

enum Source<'a> {
    Local(&'a Path),
    Hub(&'a str),
}

fn classify(model: &str) -> Result<Source<'_>> {
    if let Some(dir) = model.strip_prefix("local-dir:") {
        return Ok(Source::Local(Path::new(dir)));
    }
    if let Some(id) = model.strip_prefix("hf-hub:") {
        return Ok(Source::Hub(id));
    }
    if Path::new(model).is_dir() {
        return Ok(Source::Local(Path::new(model)));
    }
    if hub::is_repo_id(model) {
        return Ok(Source::Hub(model));
    }
    bail!("--model {model:?} is neither a directory nor a hub repo id like `yyupenn/whyxrayclip`")
}

pub fn resolve(req: &ModelRequest, printer: &Printer) -> Result<ModelFiles> {
    match classify(&req.model)? {
        Source::Local(dir) => resolve_local(dir),
        Source::Hub(id) => hub::resolve(id, req, printer),
    }
}

fn resolve_local(dir: &Path) -> Result<ModelFiles> {
    if !dir.is_dir() {
        bail!("model directory {} does not exist", dir.display());
    }
    let config = dir.join(CONFIG_FILE);
    if !config.is_file() {
        bail!("model directory {} has no {CONFIG_FILE}", dir.display());
    }
    // open_clip would build a randomly initialised model here; we refuse.
    let Some(weights) = LOCAL_WEIGHTS
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
    else {
        bail!(
            "model directory {} has no weights (looked for {})",
            dir.display(),
            LOCAL_WEIGHTS.join(", ")
        );
    };
    // The hub cache's own snapshot directory is that hub model, at that commit.
    let (id, commit) = match identity::hub_snapshot(dir) {
        Some((id, sha)) => (id, Some(sha)),
        None => (dir.display().to_string(), None),
    };
    Ok(ModelFiles::new(id, commit, config, weights))
}
