//! Output (provenance): the `--meta` JSON written beside a run's results — whyxray version,
//! command line, model id and resolved revision, device and dtype, preprocessing, decoding
//! options and what the command added (prompts and rule for classify) — once at the start and
//! again at the end with the counts, so that a cited result can be reproduced.

use crate::cli::RunConfig;
use crate::model::Clip;
use crate::source::ModelFiles;
use crate::Outcome;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub struct Meta {
    path: PathBuf,
    value: Value,
    start: Instant,
}

impl Meta {
    /// The common record; `extra` (the command's own settings) is merged in. Written at once.
    pub fn start(
        path: &Path,
        command: &str,
        model: &Clip,
        files: &ModelFiles,
        run: &RunConfig,
        extra: Value,
    ) -> Result<Self> {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut value = json!({
            "whyxray": env!("CARGO_PKG_VERSION"),
            "command": command,
            "argv": std::env::args().collect::<Vec<_>>(),
            "started_unix": unix,
            "model": {
                "id": files.id,
                "revision": files.commit,
                "config": files.config.file_name().map(|f| f.to_string_lossy()),
                "weights": files.weights.file_name().map(|f| f.to_string_lossy()),
                "embed_dim": model.config.model.embed_dim,
                "checkpoint_logit_scale": model.logit_scale(),
            },
            "device": format!("{:?}", model.device()).to_lowercase(),
            "dtype": format!("{:?}", model.dtype()).to_lowercase(),
            "preprocess": model.config.preprocess,
            "decode": {
                "window": run.decode.window.to_string(),
                "frame": run.decode.frame,
                "max_megapixels": run.decode.max_pixels as f64 / 1e6,
                "exif_orientation": "applied",
            },
            "tokenizer": {
                "kind": "openai-clip-bpe (open_clip get_tokenizer(\"ViT-L-14\"))",
                "context_length": model.config.model.text.context_length,
            },
            "finished": null,
        });
        if let (Value::Object(v), Value::Object(e)) = (&mut value, extra) {
            v.extend(e);
        }
        let meta = Self {
            path: path.to_path_buf(),
            value,
            start: Instant::now(),
        };
        meta.write()?;
        Ok(meta)
    }

    pub fn finish(mut self, outcome: &Outcome) -> Result<()> {
        self.value["finished"] = json!({
            "scored": outcome.scored,
            "failed": outcome.failed,
            "interrupted": outcome.interrupted,
            "seconds": self.start.elapsed().as_secs_f64(),
        });
        self.write()
    }

    /// Temp file + rename: a reader never sees half a record.
    fn write(&self) -> Result<()> {
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let text = serde_json::to_string_pretty(&self.value)? + "\n";
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .with_context(|| format!("cannot write --meta {}", self.path.display()))
    }
}

/// The model identity recorded by an earlier run's meta file, for checks across commands
/// (a probe must be applied to embeddings of the model it was fitted on).
pub fn read_model(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    v.get("model")
        .cloned()
        .with_context(|| format!("{}: no \"model\" record", path.display()))
}
