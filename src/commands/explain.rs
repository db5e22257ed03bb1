//! `whyxray explain`: labels -> prompts -> text embeddings once; images streamed in batches ->
//! classify's scores, then per image a raw map per label (gae, gradcam or occlusion), placed
//! back on the original image as overlays and a strip, written to DIR with an index.html;
//! one jsonl row per input on stdout.

use super::{embed_texts_cached, for_each_batch_with_pixels};
use crate::cli::{ExplainConfig, LogitScale, TargetChoice};
use crate::explain::gallery;
use crate::explain::geometry::Placement;
use crate::explain::maps::{explain_batch, Explained, Method, Targets};
use crate::explain::render::{overlay, strip, Rgb};
use crate::image::decode_file_with;
use crate::model::{Clip, Plan};
use crate::output::meta::{self, Meta};
use crate::output::Sink;
use crate::printer::Printer;
use crate::prompts::token_warnings;
use crate::score::Scorer;
use crate::Outcome;
use anyhow::{Context, Result};
use candle_core::Tensor;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;

pub fn run(c: &ExplainConfig, plan: &Plan, printer: &Printer) -> Result<Outcome> {
    let tokenizer = crate::text::Tokenizer::bundled(plan.config.model.text.context_length)?;
    for w in token_warnings(&c.classes, &tokenizer) {
        printer.warn(w);
    }
    let mut loaded: Option<Clip> = None;
    let (pos, neg) = prompt_embeddings(c, plan, &mut loaded)?;
    let model = match loaded {
        Some(m) => m,
        None => plan.load()?,
    };
    let scale = match c.logit_scale {
        LogitScale::Fixed(s) => s,
        LogitScale::Model => model.logit_scale(),
    };
    let scorer = Scorer::new(pos.clone(), neg.clone(), c.ensemble, scale);
    let targets = Targets::new(
        &pos,
        c.multilabel.then_some(&neg[..]),
        c.ensemble,
        scale,
        c.target == TargetChoice::Probability,
    );
    std::fs::create_dir_all(&c.dir)
        .with_context(|| format!("cannot create -o {}", c.dir.display()))?;
    let meta = match &c.meta {
        Some(path) => Some(Meta::start(
            path,
            meta::record(plan, Some(&model), "explain", &c.run, provenance(c, scale))?,
            None,
        )?),
        None => None,
    };
    let mut sink = Sink::open(None, false, printer)?;
    let mut stems: HashMap<String, usize> = HashMap::new();
    let mut page = gallery::Gallery::create(&c.dir, &c.labels, &method_name(c.method))?;
    let outcome = for_each_batch_with_pixels(
        &model,
        &c.run,
        Default::default(),
        printer,
        true,
        |batch, pixels| {
            // The pipeline ran no model: the images that decoded are explained together,
            // their embeddings coming from the same passes.
            let ok: Vec<usize> = (0..batch.len()).filter(|&i| batch[i].1.is_ok()).collect();
            // In the order of `ok`: the next one belongs to the next row that decoded.
            let mut explained = explain_slots(&model, &targets, c, pixels, &ok).map(Vec::into_iter);
            let mut out = Vec::new();
            for (input, emb) in batch {
                // A failed decode was named by the pipeline; a failure drawing the maps is named here.
                let result = emb.and_then(|_| {
                    let done = match &mut explained {
                        Ok(next) => next.next().context("not explained"),
                        Err(e) => Err(anyhow::anyhow!("{e:#}")),
                    };
                    let stem = unique_stem(&mut stems, &input.path);
                    done.and_then(|x| picture(c, &model, &scorer, x, &input.path, &stem))
                        .map_err(|e| {
                            let e = format!("{e:#}");
                            printer.failure(&input.path, &e);
                            e
                        })
                });
                let (row, strip) = match result {
                    Ok((row, strip)) => (row, Some(strip)),
                    Err(e) => (
                        json!({ "file": input.path, "scores": null, "maps": null, "error": e }),
                        None,
                    ),
                };
                serde_json::to_writer(&mut out, &public(&row))?;
                out.push(b'\n');
                page.add(&row, strip.as_deref())?;
            }
            sink.write_chunk(&out)
        },
    )?;
    page.finish()?;
    if let Some(meta) = meta {
        meta.finish(&outcome)?;
    }
    Ok(outcome)
}

fn method_name(m: Method) -> String {
    match m {
        Method::Gae { layers } => format!("gae, last {layers} block(s)"),
        Method::GradCam => "gradcam".into(),
        Method::Occlusion { window, stride } => {
            format!("occlusion, {window}x{window} patches every {stride}")
        }
    }
}

/// Each class's normalised prompt embeddings, positive and (multi-label) negative, through
/// the text cache.
#[allow(clippy::type_complexity)]
fn prompt_embeddings(
    c: &ExplainConfig,
    plan: &Plan,
    loaded: &mut Option<Clip>,
) -> Result<(Vec<Vec<Vec<f32>>>, Vec<Vec<Vec<f32>>>)> {
    let mut texts: Vec<String> = Vec::new();
    for p in c.classes.iter().flat_map(|k| k.pos.iter().chain(&k.neg)) {
        if !texts.contains(p) {
            texts.push(p.clone());
        }
    }
    let embedded = embed_texts_cached(plan, loaded, &texts)?;
    let look = |ps: &[String]| -> Vec<Vec<f32>> {
        ps.iter()
            .map(|p| embedded[texts.iter().position(|t| t == p).unwrap_or_default()].clone())
            .collect()
    };
    Ok((
        c.classes.iter().map(|k| look(&k.pos)).collect(),
        c.classes.iter().map(|k| look(&k.neg)).collect(),
    ))
}

/// The row as printed: without the gallery's bookkeeping.
fn public(row: &Value) -> Value {
    let mut row = row.clone();
    if let Some(maps) = row.get_mut("maps").and_then(Value::as_object_mut) {
        for m in maps.values_mut() {
            if let Some(o) = m.as_object_mut() {
                o.remove("overlay_name");
            }
        }
    }
    row
}

/// `path`'s file stem, made unique in this run (`x`, `x-2`, `x-3`, ...).
fn unique_stem(seen: &mut HashMap<String, usize>, path: &str) -> String {
    let stem = Path::new(path)
        .file_stem()
        .map_or_else(|| "image".to_string(), |s| s.to_string_lossy().into_owned());
    let n = seen.entry(stem.clone()).or_default();
    *n += 1;
    if *n == 1 {
        stem
    } else {
        format!("{stem}-{n}")
    }
}

/// A label as a file name part: lowercase letters, digits and dashes.
fn slug(label: &str) -> String {
    let s: String = label
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    s.chars().take(40).collect()
}

/// The batch's images at `slots` (of the flat [n, 3, S, S] `pixels`) explained together.
fn explain_slots(
    model: &Clip,
    targets: &Targets,
    c: &ExplainConfig,
    pixels: &[f32],
    slots: &[usize],
) -> Result<Vec<Explained>> {
    if slots.is_empty() {
        return Ok(Vec::new());
    }
    let s = model.config.preprocess.size;
    let one = 3 * s * s;
    let mut picked = Vec::with_capacity(slots.len() * one);
    for &i in slots {
        picked.extend_from_slice(&pixels[i * one..(i + 1) * one]);
    }
    let batch = Tensor::from_vec(picked, (slots.len(), 3, s, s), &candle_core::Device::Cpu)?;
    explain_batch(model, &batch, targets, c.method)
}

/// One image: its maps, overlays, strip (and raw npy); the row and the strip's file name.
fn picture(
    c: &ExplainConfig,
    model: &Clip,
    scorer: &Scorer,
    explained: Explained,
    path: &str,
    stem: &str,
) -> Result<(Value, String)> {
    let scores = scorer.score(&explained.embedding);
    let maps = explained.maps.to_dtype(candle_core::DType::F32)?;
    let grid = maps.dim(1)?;
    let flat: Vec<f32> = maps.flatten_all()?.to_vec1()?;
    // The original as decoded and windowed (DICOM, 16-bit), EXIF orientation applied.
    let decoded = decode_file_with(Path::new(path), &c.run.decode)?;
    let original = Rgb::of(&decoded.image);
    let vision = &model.config.model.vision;
    let at = Placement::new(
        original.width,
        original.height,
        &model.config.preprocess,
        vision.patch_size,
        grid,
    );
    let mut map_rows = Map::new();
    let mut panels = Vec::new();
    for (k, label) in c.labels.iter().enumerate() {
        let map = &flat[k * grid * grid..(k + 1) * grid * grid];
        let o = overlay(&original, map, &at, c.colormap, c.alpha);
        let name = format!("{stem}.{}-{}.png", k + 1, slug(label));
        o.picture.save(&c.dir.join(&name))?;
        let best = (0..map.len()).fold(0, |b, i| if map[i] > map[b] { i } else { b });
        let (x, y) = at.cell_centre(best / grid, best % grid);
        map_rows.insert(
            label.clone(),
            json!({
                "overlay": c.dir.join(&name),
                "overlay_name": name,
                "peak": [x.round(), y.round()],
                "range": [f32_json(o.range.0), f32_json(o.range.1)],
            }),
        );
        let shown = gallery::score_text(f64::from(scores[k]));
        panels.push((o.picture, label.clone(), shown));
    }
    let strip_name = format!("{stem}.strip.png");
    strip(&original, &panels).save(&c.dir.join(&strip_name))?;
    let top = (0..scores.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
    let mut row = json!({
        "file": path,
        "scores": c.labels.iter().cloned().zip(scores.iter().map(|v| f32_json(*v))).collect::<Map<String, Value>>(),
        "top": c.labels[top],
        "maps": map_rows,
        "strip": c.dir.join(&strip_name),
    });
    if c.raw {
        let name = format!("{stem}.raw.npy");
        crate::output::npy::write_array(&c.dir.join(&name), &[c.labels.len(), grid, grid], &flat)?;
        row["raw"] = json!(c.dir.join(&name));
    }
    row["error"] = Value::Null;
    Ok((row, strip_name))
}

/// A float32 as JSON in its shortest form (as classify writes scores), not widened to f64.
fn f32_json(v: f32) -> Value {
    v.to_string()
        .parse::<f64>()
        .map_or(Value::Null, |f| json!(f))
}

fn provenance(c: &ExplainConfig, scale: f32) -> Value {
    let method = match c.method {
        Method::Gae { layers } => json!({ "name": "gae", "layers": layers }),
        Method::GradCam => json!({ "name": "gradcam", "layer": "last block ln_1" }),
        Method::Occlusion { window, stride } => {
            json!({ "name": "occlusion", "window_patches": window, "stride": stride })
        }
    };
    json!({ "explain": {
        "method": method,
        "target": c.target,
        "logit_scale": scale,
        "multilabel": c.multilabel,
        "ensemble": c.ensemble,
        "classes": c.classes,
        "colormap": c.colormap,
        "alpha": c.alpha,
        "normalisation": "each map to its own range (min..max)",
        "dir": c.dir,
    }})
}
