//! `explain`'s raw maps against the Python references (tests/fixtures/make_explain_reference.py):
//! gae (the Transformer-MM-Explainability notebook's `interpret` ported to open_clip, with
//! torch.autograd), gradcam (pytorch-grad-cam's GradCAM) and occlusion (a plain loop), on two
//! tiny models, three shared X-rays, single labels (logit and probability), an ensemble and a
//! multi-label target: relative L2 <= 1e-3 and the same argmax patch.

use crate::support::*;
use candle_core::{Device, Tensor};
use serde_json::Value;
use whyxray::explain::maps::{explain, Method, Targets};
use whyxray::image::{decode_file, preprocess};
use whyxray::model::{config::OpenClipConfig, Clip};
use whyxray::score::Ensemble;
use whyxray::source::LOCAL_WEIGHTS;

fn load(dir: &std::path::Path) -> Clip {
    let cfg = OpenClipConfig::from_file(&dir.join("open_clip_config.json")).unwrap();
    let weights = LOCAL_WEIGHTS
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .unwrap();
    Clip::load(cfg, &weights, &Device::Cpu).unwrap()
}

fn texts(model: &Clip, t: &[String]) -> Vec<Vec<f32>> {
    whyxray::commands::embed_texts(model, t).unwrap()
}

/// The best value exceeds the second by more than 1e-3 of the map's range.
fn clear_peak(v: &[f64]) -> bool {
    let mut s = v.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let range = s[0] - s[s.len() - 1];
    s.len() < 2 || s[0] - s[1] > 1e-3 * range
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

#[test]
fn raw_maps_match_the_python_references() {
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/expected/explain.json")).unwrap();
    let r: Value = serde_json::from_str(&text).unwrap();
    let labels: Vec<String> = serde_json::from_value(r["labels"].clone()).unwrap();
    let templates: Vec<String> = serde_json::from_value(r["templates"].clone()).unwrap();
    let scale = r["scale"].as_f64().unwrap() as f32;
    let mut worst: std::collections::BTreeMap<String, f64> = Default::default();
    let mut peaks: std::collections::BTreeMap<String, usize> = Default::default();
    let mut models = std::collections::HashMap::new();
    for case in r["cases"].as_array().unwrap() {
        let name = case["model"].as_str().unwrap();
        let model = models
            .entry(name.to_string())
            .or_insert_with(|| load(&model_dir(name)));
        let image = root().join(case["image"].as_str().unwrap());
        let pixels = preprocess(&decode_file(&image).unwrap(), &model.config.preprocess);
        let s = model.config.preprocess.size;
        let pixels = Tensor::from_vec(pixels, (3, s, s), &Device::Cpu).unwrap();
        let kind = case["case"].as_str().unwrap();
        let probability = case["probability"].as_bool().unwrap();
        let one = |l: &String| vec![texts(model, std::slice::from_ref(l)).remove(0)];
        let pos: Vec<Vec<Vec<f32>>> = match kind {
            "ensemble" => labels
                .iter()
                .map(|l| {
                    texts(
                        model,
                        &templates
                            .iter()
                            .map(|t| t.replace("{}", l))
                            .collect::<Vec<_>>(),
                    )
                })
                .collect(),
            _ => labels.iter().map(one).collect(),
        };
        let neg: Option<Vec<Vec<Vec<f32>>>> = (kind == "multilabel")
            .then(|| labels.iter().map(|l| one(&format!("no {l}"))).collect());
        let targets = Targets::new(
            &pos,
            neg.as_deref(),
            Ensemble::MeanEmbedding,
            scale,
            probability,
        );
        for (key, method) in [
            ("gae1", Method::Gae { layers: 1 }),
            ("gae2", Method::Gae { layers: 2 }),
            ("gradcam", Method::GradCam),
            (
                "occlusion_2_2",
                Method::Occlusion {
                    window: 2,
                    stride: 2,
                },
            ),
            (
                "occlusion_3_2",
                Method::Occlusion {
                    window: 3,
                    stride: 2,
                },
            ),
        ] {
            let got: Vec<Vec<Vec<f32>>> = explain(model, &pixels, &targets, method)
                .unwrap()
                .to_vec3()
                .unwrap();
            let want: Vec<Vec<Vec<f64>>> =
                serde_json::from_value(case["maps"][key].clone()).unwrap();
            for (l, (g, w)) in got.iter().zip(&want).enumerate() {
                let g: Vec<f64> = g.concat().iter().map(|v| f64::from(*v)).collect();
                let w: Vec<f64> = w.concat();
                let what = format!(
                    "{name} {} {kind} p={probability} {key} label {l}",
                    case["image"]
                );
                let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
                let diff = g
                    .iter()
                    .zip(&w)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let rel = if norm > 0.0 { diff / norm } else { diff };
                assert!(rel <= 1e-3, "{what}: relative L2 {rel:e}");
                // The same argmax patch, up to ties: occlusion gives every patch of a window
                // the same value, and a saturated probability ties patches to 1e-21; our best
                // patch must be one of the reference's best (within 1e-3 of its range).
                if norm > 0.0 {
                    let (lo, hi) = w
                        .iter()
                        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
                    let best = w[argmax(&g)];
                    assert!(
                        best >= hi - 1e-3 * (hi - lo),
                        "{what}: argmax patch {} is {best}, the best {hi}",
                        argmax(&g)
                    );
                    if clear_peak(&w) {
                        assert_eq!(argmax(&g), argmax(&w), "{what}: argmax patch");
                        *peaks.entry(key.to_string()).or_default() += 1;
                    }
                }
                let e = worst.entry(key.to_string()).or_default();
                *e = e.max(rel);
            }
        }
    }
    for (k, v) in &worst {
        println!("{k}: max relative L2 {v:.2e}, argmax exactly equal on {} maps with one clear best patch", peaks.get(k).copied().unwrap_or(0));
    }
}
