//! Output (provenance): the `--meta` JSON written beside a run's results — whyxray version,
//! command line, the model (id, revision, content digests), device and dtype, preprocessing,
//! decoding options and what the command added (prompts and rule for classify) — once at the
//! start and again at the end with the counts, so that a cited result can be reproduced.
//! A resumed run keeps the first run's record, checks that it describes the same settings, and
//! adds itself to its `resumed` list.

use crate::cli::RunConfig;
use crate::model::{Clip, Plan};
use crate::Outcome;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The record of a run, from its plan (before the weights are read) or, with `model`, with
/// what the checkpoint holds too. `extra` (the command's own settings) is merged in.
pub fn record(
    plan: &Plan,
    model: Option<&Clip>,
    command: &str,
    run: &RunConfig,
    extra: Value,
) -> Result<Value> {
    let mut value = json!({
        "whyxray": env!("CARGO_PKG_VERSION"),
        "command": command,
        "argv": std::env::args().collect::<Vec<_>>(),
        "started_unix": unix_now(),
        "model": model_record(plan, model)?,
        "device": format!("{:?}", plan.device).to_lowercase(),
        "dtype": format!("{:?}", plan.dtype).to_lowercase(),
        "preprocess": plan.config.preprocess,
        "decode": {
            "window": run.decode.window.to_string(),
            "frame": run.decode.frame,
            "max_megapixels": run.decode.max_pixels as f64 / 1e6,
            "exif_orientation": "applied",
        },
        "tokenizer": {
            "kind": "openai-clip-bpe (open_clip get_tokenizer(\"ViT-L-14\"))",
            "context_length": plan.config.model.text.context_length,
        },
        "finished": null,
    });
    if let (Value::Object(v), Value::Object(e)) = (&mut value, extra) {
        v.extend(e);
    }
    Ok(value)
}

/// The model: its id and revision as resolved, what it is (content digests), its dimension.
pub fn model_record(plan: &Plan, model: Option<&Clip>) -> Result<Value> {
    let files = &plan.files;
    Ok(json!({
        "id": files.id,
        "revision": files.commit,
        "identity": files.identity()?,
        "config": files.config.file_name().map(|f| f.to_string_lossy()),
        "weights": files.weights.file_name().map(|f| f.to_string_lossy()),
        "embed_dim": plan.config.model.embed_dim,
        "checkpoint_logit_scale": model.map(Clip::logit_scale),
    }))
}

/// What changes a row: a resumed run must agree on each. (Not the device: CPU and GPU agree to
/// float32 rounding; not the size limit or the output format, which change no score.)
const SCORING: &[&str] = &[
    "/command",
    "/model/embed_dim",
    "/dtype",
    "/preprocess",
    "/decode/window",
    "/decode/frame",
    "/classify/logit_scale_source",
    "/classify/multilabel",
    "/classify/ensemble",
    "/classify/classes",
    "/concepts/bank/sha256",
    "/concepts/templates",
];

/// Each setting that differs between an earlier run's record and this one's, in words.
pub fn differences(earlier: &Value, now: &Value) -> Vec<String> {
    let mut keys: Vec<&str> = SCORING.to_vec();
    // The model by content where both records have it; older records name it only.
    if earlier
        .pointer("/model/identity")
        .is_some_and(Value::is_object)
    {
        keys.push("/model/identity");
    } else {
        keys.extend(["/model/id", "/model/revision"]);
    }
    let given = |v: &Value| v.pointer("/classify/logit_scale_source") == Some(&json!("given"));
    if given(earlier) && given(now) {
        keys.push("/classify/logit_scale");
    }
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (earlier.pointer(k), now.pointer(k));
            (a != b).then(|| {
                let show = |v: Option<&Value>| v.map_or("nothing".to_string(), short);
                format!("{}: {} then, {} now", &k[1..], show(a), show(b))
            })
        })
        .collect()
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}...", s.chars().take(117).collect::<String>())
    } else {
        s
    }
}

/// `--resume` of an output that already holds rows: the record its first run wrote at
/// `meta`, which must describe the same settings as `now`.
pub fn check_resume(output: &Path, meta: Option<&Path>, now: &Value) -> Result<Value> {
    let Some(meta) = meta else {
        bail!(
            "--resume: {} holds rows, and without a meta record (--no-meta) nothing says they \
             were made with this run's settings",
            output.display()
        );
    };
    let earlier = read_json(meta).with_context(|| {
        format!(
            "--resume: {} holds rows, but its record {} cannot be read, so nothing says they were \
             made with this run's settings (start a new output, or give --meta FILE)",
            output.display(),
            meta.display()
        )
    })?;
    let diff = differences(&earlier, now);
    if !diff.is_empty() {
        bail!(
            "--resume: {} was made with other settings than this run's ({}); start a new output \
             file or rerun with the same settings:\n  {}",
            output.display(),
            meta.display(),
            diff.join("\n  ")
        );
    }
    Ok(earlier)
}

pub struct Meta {
    path: PathBuf,
    value: Value,
    start: Instant,
    /// Index of this run in `resumed`, when it continues an earlier record.
    resumed: Option<usize>,
}

impl Meta {
    /// Writes `record` at `path`; or, continuing `earlier` (a resumed run), keeps that record
    /// and adds this run to its `resumed` list.
    pub fn start(path: &Path, record: Value, earlier: Option<Value>) -> Result<Self> {
        let (value, resumed) = match earlier {
            None => (record, None),
            Some(mut v) => {
                let entry = json!({
                    "whyxray": record["whyxray"],
                    "argv": record["argv"],
                    "started_unix": record["started_unix"],
                    "device": record["device"],
                    "finished": null,
                });
                if !v["resumed"].is_array() {
                    v["resumed"] = json!([]);
                }
                let list = v["resumed"].as_array_mut().context("resumed list")?;
                list.push(entry);
                let i = list.len() - 1;
                (v, Some(i))
            }
        };
        let meta = Self {
            path: path.to_path_buf(),
            value,
            start: Instant::now(),
            resumed,
        };
        meta.write()?;
        Ok(meta)
    }

    pub fn finish(mut self, outcome: &Outcome) -> Result<()> {
        let done = json!({
            "scored": outcome.scored,
            "failed": outcome.failed,
            "interrupted": outcome.interrupted,
            "seconds": self.start.elapsed().as_secs_f64(),
        });
        match self.resumed {
            Some(i) => self.value["resumed"][i]["finished"] = done,
            None => self.value["finished"] = done,
        }
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read_json(path: &Path) -> Result<Value> {
    let text = crate::read_text(path)?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

/// The model identity recorded by an earlier run's meta file, for checks across commands
/// (a probe must be applied to embeddings of the model it was fitted on).
pub fn read_model(path: &Path) -> Result<Value> {
    read_json(path)?
        .get("model")
        .cloned()
        .with_context(|| format!("{}: no \"model\" record", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_what_changes_a_score_and_nothing_else() {
        let base = json!({
            "command": "classify", "argv": ["a"], "device": "cpu", "dtype": "f32",
            "model": {"id": "m", "revision": "r", "identity": {"weights_sha256": "w"}, "embed_dim": 8},
            "preprocess": {"size": 224}, "decode": {"window": "auto", "frame": null, "max_megapixels": 400.0},
            "classify": {"logit_scale": 100.0, "logit_scale_source": "given", "multilabel": false,
                         "ensemble": "mean-embedding", "classes": [{"name": "a"}]},
        });
        let mut other = base.clone();
        other["argv"] = json!(["b"]);
        other["device"] = json!("cuda:0");
        other["model"]["id"] = json!("/snapshot/dir");
        other["decode"]["max_megapixels"] = json!(10.0);
        assert!(
            differences(&base, &other).is_empty(),
            "{:?}",
            differences(&base, &other)
        );
        for (k, v) in [
            ("/dtype", json!("bf16")),
            ("/classify/logit_scale", json!(50.0)),
            ("/classify/classes", json!([{"name": "b"}])),
            ("/decode/window", json!("minmax")),
            ("/model/identity", json!({"weights_sha256": "x"})),
        ] {
            let mut changed = base.clone();
            *changed.pointer_mut(k).unwrap() = v;
            let d = differences(&base, &changed);
            assert!(d.len() == 1 && d[0].starts_with(&k[1..]), "{k}: {d:?}");
        }
        let mut legacy = base.clone();
        legacy["model"].as_object_mut().unwrap().remove("identity");
        assert_eq!(
            differences(&legacy, &other).len(),
            1,
            "an old record compares ids"
        );
    }
}
