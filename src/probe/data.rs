//! Probe (inputs and the saved probe): image embeddings from an `embed` output (npy + its
//! `.paths.tsv` sidecar, or jsonl) with the model that made them (its `.meta.json`), and the
//! probe file itself: weights plus what they may be applied to.

use super::features::ConceptFeatures;
use super::logreg::{Model, Penalty};
use crate::output::meta::read_model;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// One embedded image, or why it has none.
pub struct Embedded {
    pub file: String,
    pub embedding: Result<Vec<f32>, String>,
}

pub struct Embeddings {
    pub rows: Vec<Embedded>,
    pub dim: usize,
    /// The `model` record of the run that made them (id, revision, embed_dim, ...).
    pub model: Value,
}

/// `OUT.meta.json`, as `embed -o OUT` writes it.
pub fn meta_of(path: &Path) -> PathBuf {
    crate::cli::sidecar(path, ".meta.json")
}

pub fn read_embeddings(path: &Path) -> Result<Embeddings> {
    let meta = meta_of(path);
    if !meta.is_file() {
        bail!(
            "{} has no {}: cannot tell which model made these embeddings (export them again with \
             `whyxray embed ... -o {}`, which writes it)",
            path.display(),
            meta.display(),
            path.display()
        );
    }
    let model = read_model(&meta)?;
    let mut magic = [0u8; 6];
    let is_npy = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && &magic == b"\x93NUMPY";
    let (rows, dim) = if is_npy {
        read_npy(path)?
    } else {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        read_jsonl(path, &bytes)?
    };
    Ok(Embeddings { rows, dim, model })
}

/// Image rows of an `embed` npy (text rows are not training data), read through the index
/// reader (header, sidecar and a truncated file checked there).
fn read_npy(path: &Path) -> Result<(Vec<Embedded>, usize)> {
    let file = crate::index::EmbeddingFile::open(path)?;
    let rows = file
        .sidecar_rows()?
        .into_iter()
        .enumerate()
        .filter(|(_, (kind, _, _))| kind == "image")
        .map(|(i, (_, item, error))| Embedded {
            file: item,
            embedding: if error.is_empty() {
                Ok(file.block(i, i + 1).into_owned())
            } else {
                Err(error)
            },
        })
        .collect();
    Ok((rows, file.dim))
}

fn read_jsonl(path: &Path, bytes: &[u8]) -> Result<(Vec<Embedded>, usize)> {
    let text = std::str::from_utf8(bytes)
        .with_context(|| format!("{}: neither npy nor jsonl", path.display()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut dim = 0;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
        let Some(file) = v["file"].as_str() else {
            continue;
        }; // text rows
        let embedding = match (&v["embedding"], &v["error"]) {
            (Value::Array(a), _) => {
                let e: Vec<f32> = a
                    .iter()
                    .map(|x| x.as_f64().map(|f| f as f32))
                    .collect::<Option<_>>()
                    .with_context(|| {
                        format!("{} line {}: a value is not a number", path.display(), i + 1)
                    })?;
                if dim != 0 && e.len() != dim {
                    bail!(
                        "{} line {}: {} values, earlier rows {dim}",
                        path.display(),
                        i + 1,
                        e.len()
                    );
                }
                dim = e.len();
                Ok(e)
            }
            (_, Value::String(e)) => Err(e.clone()),
            _ => bail!(
                "{} line {}: neither \"embedding\" nor \"error\"",
                path.display(),
                i + 1
            ),
        };
        rows.push(Embedded {
            file: file.to_string(),
            embedding,
        });
    }
    if dim == 0 {
        bail!("{}: no embedded image", path.display());
    }
    Ok((rows, dim))
}

/// The same model: the same weights and config by content where both records have their
/// digests (whatever the model was called: a hub id, its snapshot directory, a copy), else
/// (records from before 0.2) the same id and revision; and the same dimension.
pub fn same_model(a: &Value, b: &Value) -> bool {
    let same_content = match (&a["identity"], &b["identity"]) {
        (x @ Value::Object(_), y @ Value::Object(_)) => x == y,
        _ => a["id"] == b["id"] && a["revision"] == b["revision"],
    };
    same_content && a["embed_dim"] == b["embed_dim"]
}

pub fn describe(model: &Value) -> String {
    let weights = model["identity"]["weights_sha256"]
        .as_str()
        .map_or(String::new(), |w| {
            format!(", weights sha256 {}", &w[..w.len().min(12)])
        });
    format!(
        "{} (revision {}, dim {}{weights})",
        model["id"], model["revision"], model["embed_dim"]
    )
}

/// A fitted probe as saved by `probe fit`.
pub struct Probe {
    pub model: Value,
    pub classes: Vec<String>,
    pub weights: Model,
    pub penalty: Penalty,
    /// A concept bottleneck's features; `None`: the probe reads embeddings.
    pub concepts: Option<ConceptFeatures>,
}

/// The probe as JSON text.
pub fn to_json(probe: &Probe, extra: Value) -> Result<String> {
    let m = &probe.weights;
    let coef: Vec<&[f64]> = m.coef.chunks(m.dim).collect();
    let mut v = json!({
        "format": "whyxray-probe/1",
        "whyxray": env!("CARGO_PKG_VERSION"),
        "model": probe.model,
        "classes": probe.classes,
        "dim": m.dim,
        "c": m.c,
        "penalty": probe.penalty,
        "features": if probe.concepts.is_some() { "concepts" } else { "embedding" },
        "rule": match (&probe.concepts, probe.penalty) {
            (None, Penalty::L2) => "multinomial logistic regression (binary: one logistic) on L2-normalised image embeddings; scikit-learn's lbfgs objective",
            (None, Penalty::L1) => "L1-penalised multinomial logistic regression (binary: one logistic) on L2-normalised image embeddings; scikit-learn's saga objective with l1_ratio=1",
            (Some(_), Penalty::L2) => "multinomial logistic regression (binary: one logistic) on z-scored concept cosines; scikit-learn's lbfgs objective",
            (Some(_), Penalty::L1) => "L1-penalised multinomial logistic regression (binary: one logistic) on z-scored concept cosines; scikit-learn's saga objective with l1_ratio=1",
        },
        "coef": coef,
        "intercept": m.intercept,
    });
    if let Some(c) = &probe.concepts {
        v["concepts"] = serde_json::to_value(c)?;
    }
    if let (Value::Object(o), Value::Object(e)) = (&mut v, extra) {
        o.extend(e);
    }
    Ok(serde_json::to_string_pretty(&v)? + "\n")
}

/// Temp file + rename: a crash leaves the old probe or the new one.
pub fn save(path: &Path, text: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write the probe {}", path.display()))
}

pub fn load(path: &Path) -> Result<Probe> {
    let ctx = || format!("--probe {}", path.display());
    let text = crate::read_text(path).with_context(ctx)?;
    let v: Value = serde_json::from_str(&text).with_context(ctx)?;
    if v["format"] != "whyxray-probe/1" {
        bail!(
            "{}: not a whyxray probe (no \"format\": \"whyxray-probe/1\")",
            ctx()
        );
    }
    let classes: Vec<String> = serde_json::from_value(v["classes"].clone()).with_context(ctx)?;
    let dim = v["dim"].as_u64().with_context(ctx)? as usize;
    let coef: Vec<Vec<f64>> = serde_json::from_value(v["coef"].clone()).with_context(ctx)?;
    let intercept: Vec<f64> = serde_json::from_value(v["intercept"].clone()).with_context(ctx)?;
    let k_rows = if classes.len() == 2 { 1 } else { classes.len() };
    if classes.len() < 2
        || coef.len() != k_rows
        || intercept.len() != k_rows
        || coef.iter().any(|r| r.len() != dim)
    {
        bail!(
            "{}: weights do not match its {} classes and dimension {dim}",
            ctx(),
            classes.len()
        );
    }
    let concepts: Option<ConceptFeatures> = match v.get("concepts") {
        Some(c) => Some(serde_json::from_value(c.clone()).with_context(ctx)?),
        None => None,
    };
    if let Some(c) = &concepts {
        let n = c.bank.concepts.len();
        if n != dim || c.embeddings.len() != n || c.mean.len() != n || c.std.len() != n {
            bail!("{}: its concepts do not match its dimension {dim}", ctx());
        }
    }
    let penalty = match v["penalty"].as_str() {
        Some("l1") => Penalty::L1,
        _ => Penalty::L2,
    };
    Ok(Probe {
        model: v["model"].clone(),
        penalty,
        concepts,
        weights: Model {
            classes: classes.len(),
            dim,
            coef: coef.concat(),
            intercept,
            c: v["c"].as_f64().unwrap_or(f64::NAN),
        },
        classes,
    })
}
