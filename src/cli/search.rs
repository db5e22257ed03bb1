//! Command line, `search`: an embedding index and its queries (texts, images, embeddings).

use super::classify::{classify_format, ClassifyFormat};
use super::outputs::{output_path, sidecar, Guard};
use super::run::DecodeArgs;
use super::Given;
use crate::image::DecodeOptions;
use crate::index::Want;
use crate::source::ModelRequest;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Texts to look for ("a chest tube"), encoded with the index's model.
    #[arg(value_name = "QUERY")]
    pub texts: Vec<String>,
    /// The embeddings to search: `whyxray embed ... -o FEATS.npy` (with its sidecars).
    #[arg(long, value_name = "FEATS.npy", help_heading = "Search")]
    pub index: PathBuf,
    /// An image to look for, embedded now (repeatable).
    #[arg(long, value_name = "FILE", help_heading = "Search")]
    pub image: Vec<PathBuf>,
    /// Every image row of another embedding file is a query (same model as the index).
    #[arg(long, value_name = "Q.npy", help_heading = "Search")]
    pub queries: Option<PathBuf>,
    /// The K most similar images per query.
    #[arg(short = 'k', value_name = "K", help_heading = "Search",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub k: Option<u64>,
    /// All images at or above this cosine (with -k: the K best of those).
    #[arg(
        long,
        value_name = "C",
        allow_negative_numbers = true,
        help_heading = "Search"
    )]
    pub min_cos: Option<f64>,
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// Output format [default: from -o's extension, else table on a terminal, else csv].
    #[arg(long, value_enum, help_heading = "Output")]
    pub format: Option<ClassifyFormat>,
    /// Write results to FILE instead of stdout (`-` for stdout).
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SearchConfig {
    pub index: PathBuf,
    pub texts: Vec<String>,
    pub images: Vec<PathBuf>,
    pub queries: Option<PathBuf>,
    pub want: Want,
    /// With `--min-cos`, the best K of those above it.
    pub limit: Option<usize>,
    pub decode: DecodeOptions,
    pub format: ClassifyFormat,
    pub output: Option<PathBuf>,
}

/// The files an embedding file brings, for the guard.
pub(super) fn read_index(guard: &mut Guard, what: &str, path: &Path) -> Result<()> {
    if !path.is_file() {
        bail!("{what} {}: no such file", path.display());
    }
    guard.read(what, path);
    for s in [".meta.json", ".paths.tsv"] {
        guard.read(what, &sidecar(path, s));
    }
    Ok(())
}

pub(super) fn config(
    a: SearchArgs,
    model: &mut ModelRequest,
    given: &Given,
) -> Result<SearchConfig> {
    if let Some(t) = a.texts.iter().find(|t| {
        let p = Path::new(t.trim());
        p.is_file() || crate::inputs::has_image_extension(p) && !t.contains(' ')
    }) {
        bail!("query {t:?} is an image path, not a text: search with an image by --image {t}");
    }
    if a.texts.is_empty() && a.image.is_empty() && a.queries.is_none() {
        bail!("search needs queries: texts, --image FILE or --queries Q.npy");
    }
    let mut guard = Guard::default();
    read_index(&mut guard, "--index", &a.index)?;
    if let Some(q) = &a.queries {
        read_index(&mut guard, "--queries", q)?;
    }
    for i in &a.image {
        guard.read("--image", i);
    }
    let needs_model = !a.texts.is_empty() || !a.image.is_empty();
    let record = read_record(&a.index)?;
    if needs_model && !given.has("model") && !given.has("revision") {
        *model = index_model(&record, &a.index, model)?;
    }
    let mut decode = a.decode.options()?;
    // Query images are decoded as the index's images were, unless told otherwise.
    if !given.has("window") {
        if let Some(w) = record.pointer("/decode/window").and_then(Value::as_str) {
            decode.window = w.parse()?;
        }
    }
    if !given.has("frame") {
        decode.frame = record
            .pointer("/decode/frame")
            .and_then(Value::as_u64)
            .map(|f| f as u32);
    }
    let want = match (a.min_cos, a.k) {
        (Some(c), _) if !(-1.0..=1.0).contains(&c) => {
            bail!("--min-cos must be a cosine between -1 and 1, got {c}")
        }
        (Some(c), _) => Want::Above(c),
        (None, k) => Want::Top(k.unwrap_or(10) as usize),
    };
    let output = output_path(a.output);
    let format = classify_format(a.format, output.as_deref())?;
    guard.write("-o", output.as_deref()).check()?;
    Ok(SearchConfig {
        index: a.index,
        texts: a.texts,
        images: a.image,
        queries: a.queries,
        want,
        limit: a.min_cos.and(a.k).map(|k| k as usize),
        decode,
        format,
        output,
    })
}

/// The model an embedding file's meta record names (as `index_model`).
pub(super) fn recorded_model(file: &Path, given: &ModelRequest) -> Result<ModelRequest> {
    let record = read_record(file)?;
    index_model(&record, file, given)
}

/// The index's meta record (a missing one is refused when the index is opened, with advice).
fn read_record(index: &Path) -> Result<Value> {
    let meta = sidecar(index, ".meta.json");
    if !meta.is_file() {
        return Ok(Value::Null);
    }
    let text = crate::read_text(&meta)?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", meta.display()))
}

/// The model the index's record names (its id and resolved revision), so that text and image
/// queries are embedded by the model that made the index unless `-m` says otherwise.
fn index_model(record: &Value, index: &Path, given: &ModelRequest) -> Result<ModelRequest> {
    let model = &record["model"];
    let id = model["id"].as_str().with_context(|| {
        format!(
            "{}: its record names no model (give -m)",
            sidecar(index, ".meta.json").display()
        )
    })?;
    let revision = match &model["revision"] {
        Value::String(r) => r.clone(),
        _ => given.revision.clone(),
    };
    Ok(ModelRequest {
        model: id.to_string(),
        revision,
        ..given.clone()
    })
}
