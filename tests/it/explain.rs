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
use whyxray::model::Clip;
use whyxray::score::Ensemble;

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

/// Runs whyxray with the tiny model in `cwd`.
fn wx(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = whyxray();
    cmd.current_dir(cwd)
        .args(args)
        .arg("-m")
        .arg(model_dir("tiny-gelu-p14"));
    run(&mut cmd)
}

fn png_size(path: &std::path::Path) -> (u32, u32) {
    image::image_dimensions(path).unwrap()
}

#[test]
fn a_folder_gives_rows_overlays_strips_raw_maps_and_a_page_whose_links_resolve() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("in/sub")).unwrap();
    std::fs::copy(
        root().join("tests/data/nih_00000001_000.png"),
        d.join("in/a.png"),
    )
    .unwrap();
    std::fs::copy(
        root().join("tests/data/nih_tall_300x1000.png"),
        d.join("in/sub/a.png"),
    )
    .unwrap();
    std::fs::copy(
        root().join("tests/data/nih_exif_rot90.jpg"),
        d.join("in/rot.jpg"),
    )
    .unwrap();
    std::fs::write(d.join("in/bad.png"), b"not an image").unwrap();
    let out = wx(
        d,
        &[
            "explain",
            "in",
            "--labels",
            "enlarged heart,no finding",
            "-o",
            "out",
            "--raw",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("bad.png").count(),
        1,
        "named once: {}",
        stderr(&out)
    );
    let rows: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let files: Vec<&str> = rows.iter().map(|r| r["file"].as_str().unwrap()).collect();
    assert_eq!(
        files,
        ["in/a.png", "in/bad.png", "in/rot.jpg", "in/sub/a.png"]
    );
    assert!(rows[1]["error"].is_string() && rows[1]["maps"].is_null());
    // The same stem twice: the second is made unique.
    assert!(d.join("out/a.strip.png").is_file() && d.join("out/a-2.strip.png").is_file());
    for row in rows.iter().filter(|r| r["error"].is_null()) {
        let file = d.join(row["file"].as_str().unwrap());
        let decoded = whyxray::image::decode_file(&file).unwrap();
        let (w, h) = (decoded.image.width as u32, decoded.image.height as u32);
        for label in ["enlarged heart", "no finding"] {
            let m = &row["maps"][label];
            let overlay = d.join(m["overlay"].as_str().unwrap());
            // On the original image as decoded (the EXIF rotation applied), not the 224 crop.
            assert_eq!(png_size(&overlay), (w, h), "{}", overlay.display());
            let (px, py) = (
                m["peak"][0].as_f64().unwrap(),
                m["peak"][1].as_f64().unwrap(),
            );
            assert!(
                px >= 0.0 && px < f64::from(w) && py >= 0.0 && py < f64::from(h),
                "{m}"
            );
            assert!(m["range"][0].as_f64().unwrap() <= m["range"][1].as_f64().unwrap());
        }
        // --raw: float32 [labels, grid, grid].
        let raw = std::fs::read(d.join(row["raw"].as_str().unwrap())).unwrap();
        let hl = u16::from_le_bytes([raw[8], raw[9]]) as usize + 10;
        let header = String::from_utf8_lossy(&raw[10..hl]).to_string();
        assert!(
            header.contains("'shape': (2, 16, 16)") && hl.is_multiple_of(64),
            "{header}"
        );
        assert_eq!(raw.len(), hl + 2 * 16 * 16 * 4);
        assert!(d.join(row["strip"].as_str().unwrap()).is_file());
        let sum: f32 = row["scores"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap() as f32)
            .sum();
        assert!((sum - 1.0).abs() < 1e-5, "scores as classify's");
    }
    let rot = &rows[2];
    let (w, h) = png_size(&d.join(rot["maps"]["no finding"]["overlay"].as_str().unwrap()));
    let stored = image::image_dimensions(root().join("tests/data/nih_exif_rot90.jpg")).unwrap();
    assert_eq!((w, h), (stored.1, stored.0), "the EXIF rotation is applied");
    // Every link and image of the page is a file of the directory.
    let page = std::fs::read_to_string(d.join("out/index.html")).unwrap();
    let mut links = 0;
    for attr in ["href=\"", "src=\""] {
        for part in page.split(attr).skip(1) {
            let target = part.split('"').next().unwrap();
            assert!(
                d.join("out").join(target.replace("%20", " ")).is_file(),
                "{target}"
            );
            links += 1;
        }
    }
    assert_eq!(
        links,
        3 * (2 + 2),
        "strip (link + img) and two overlays per good image"
    );
    assert!(page.contains("not localisation of disease"));
    assert!(
        page.trim_end().ends_with("</html>"),
        "the page was finished"
    );
    assert!(
        !d.join("out/.index.html.partial").exists(),
        "the page was renamed into place"
    );
    // Scores are exactly classify's at the same batch size.
    let c = wx(
        d,
        &[
            "classify",
            "in",
            "--labels",
            "enlarged heart,no finding",
            "--format",
            "jsonl",
        ],
    );
    for (crow, erow) in stdout(&c).lines().zip(&rows) {
        let crow: Value = serde_json::from_str(crow).unwrap();
        assert_eq!(crow["scores"], erow["scores"], "{}", crow["file"]);
    }
}

#[test]
fn the_raw_maps_of_the_binary_are_the_library_s_and_options_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let img = root().join("tests/data/nih_00027426_000_512.png");
    let out = wx(
        d,
        &[
            "explain",
            img.to_str().unwrap(),
            "--labels",
            "a,b,c",
            "-o",
            "o",
            "--raw",
            "--method",
            "gradcam",
            "-q",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let raw = std::fs::read(d.join("o/nih_00027426_000_512.raw.npy")).unwrap();
    let hl = u16::from_le_bytes([raw[8], raw[9]]) as usize + 10;
    let got: Vec<f32> = raw[hl..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let model = load(&model_dir("tiny-gelu-p14"));
    let pixels = preprocess(&decode_file(&img).unwrap(), &model.config.preprocess);
    let pixels = Tensor::from_vec(pixels, (3, 224, 224), &Device::Cpu).unwrap();
    let pos: Vec<Vec<Vec<f32>>> = ["a", "b", "c"]
        .iter()
        .map(|l| vec![texts(&model, &[l.to_string()]).remove(0)])
        .collect();
    let targets = Targets::new(&pos, None, Ensemble::MeanEmbedding, 100.0, false);
    let want: Vec<f32> = explain(&model, &pixels, &targets, Method::GradCam)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(got, want);
    for (args, needle) in [
        (
            vec!["--method", "gradcam", "--layers", "2"],
            "--layers does nothing",
        ),
        (vec!["--stride", "1"], "--stride does nothing"),
        (vec!["--alpha", "2"], "--alpha must be between 0 and 1"),
    ] {
        let mut a = vec![
            "explain",
            img.to_str().unwrap(),
            "--labels",
            "a,b",
            "-o",
            "o2",
        ];
        a.extend(args);
        let out = wx(d, &a);
        assert_eq!(out.status.code(), Some(2), "{a:?}");
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
    }
    std::fs::create_dir(d.join("imgs")).unwrap();
    std::fs::copy(&img, d.join("imgs/x.png")).unwrap();
    let out = wx(
        d,
        &["explain", "imgs", "--labels", "a,b", "-o", "imgs/maps"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("inside the input directory"),
        "{}",
        stderr(&out)
    );
    // Occlusion through the binary, with overlapping windows.
    let out = wx(
        d,
        &[
            "explain",
            img.to_str().unwrap(),
            "--labels",
            "a,b",
            "-o",
            "o3",
            "--method",
            "occlusion",
            "--window-patches",
            "3",
            "--stride",
            "2",
            "-q",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A grid cell's box, as `Placement` computes it, is where the real preprocessing puts the
/// cell: a white box in a black image lands on that cell of the 224 crop, within a pixel.
#[test]
fn grid_cells_land_where_the_crop_put_them() {
    use whyxray::explain::geometry::Placement;
    use whyxray::model::config::ResizeMode;
    let model = load(&model_dir("tiny-gelu-p14"));
    for (w, h, mode) in [
        (1000, 500, ResizeMode::Shortest),
        (333, 1001, ResizeMode::Shortest),
        (225, 224, ResizeMode::Shortest),
        (300, 700, ResizeMode::Squash),
    ] {
        let mut cfg = model.config.preprocess.clone();
        cfg.resize_mode = mode;
        let at = Placement::new(w, h, &cfg, 14, 16);
        for (r, c) in [(0, 0), (5, 9), (15, 15)] {
            let (x0, y0, x1, y1) = at.cell_box(r, c);
            let img = image::GrayImage::from_fn(w as u32, h as u32, |x, y| {
                let inside = f64::from(x) + 0.5 > x0
                    && f64::from(x) + 0.5 < x1
                    && f64::from(y) + 0.5 > y0
                    && f64::from(y) + 0.5 < y1;
                image::Luma([if inside { 255 } else { 0 }])
            });
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            let d = whyxray::image::decode_bytes(&png).unwrap();
            let crop = whyxray::image::preprocess::resize_and_crop(&d, &cfg);
            // The bright pixels of the crop span the cell's 14 x 14 box, give or take one.
            let bright: Vec<(usize, usize)> = (0..224 * 224)
                .filter(|i| crop.data[*i] > 127)
                .map(|i| (i % 224, i / 224))
                .collect();
            let (bx0, bx1) = (
                bright.iter().map(|p| p.0).min().unwrap(),
                bright.iter().map(|p| p.0).max().unwrap(),
            );
            let (by0, by1) = (
                bright.iter().map(|p| p.1).min().unwrap(),
                bright.iter().map(|p| p.1).max().unwrap(),
            );
            let what = format!("{w}x{h} {mode:?} cell ({r}, {c}): x {bx0}..{bx1}, y {by0}..{by1}");
            assert!(
                (bx0 as i64 - (c * 14) as i64).abs() <= 1
                    && (bx1 as i64 - (c * 14 + 13) as i64).abs() <= 1,
                "{what}"
            );
            assert!(
                (by0 as i64 - (r * 14) as i64).abs() <= 1
                    && (by1 as i64 - (r * 14 + 13) as i64).abs() <= 1,
                "{what}"
            );
        }
    }
}

/// Deletion and insertion areas against a random order, averaged over images x labels, on the
/// tiny models (printed with --nocapture; the README reports them).
#[test]
fn maps_are_more_faithful_than_a_random_order() {
    use whyxray::explain::faithfulness::{areas, order_of, random_order};
    let images = [
        "../shared/data/xray/png/nih_00000001_000_1024.png",
        "../shared/data/xray/png/wikimedia_chest_xray_pa_3-8-2010.png",
        "../shared/data/xray/png/nih_00000013_003_1024.png",
        "../shared/data/xray/jpeg/siim_chest_1024_gray_nojfif.jpg",
    ];
    let labels = ["enlarged heart", "pleural effusion", "no finding"];
    for name in ["tiny-gelu-p14", "tiny-quickgelu-p32-squash"] {
        let model = load(&model_dir(name));
        let s = model.config.preprocess.size;
        let pos: Vec<Vec<Vec<f32>>> = labels
            .iter()
            .map(|l| vec![texts(&model, &[l.to_string()]).remove(0)])
            .collect();
        let targets = Targets::new(&pos, None, Ensemble::MeanEmbedding, 100.0, false);
        for (key, method) in [
            ("gae", Method::Gae { layers: 1 }),
            ("gradcam", Method::GradCam),
            (
                "occlusion",
                Method::Occlusion {
                    window: 1,
                    stride: 1,
                },
            ),
        ] {
            let (mut del, mut ins, mut rdel, mut rins, mut n) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (i, img) in images.iter().enumerate() {
                let pixels = preprocess(
                    &decode_file(&root().join(img)).unwrap(),
                    &model.config.preprocess,
                );
                let t = Tensor::from_vec(pixels.clone(), (3, s, s), &Device::Cpu).unwrap();
                let maps: Vec<Vec<f32>> = explain(&model, &t, &targets, method)
                    .unwrap()
                    .flatten_from(1)
                    .unwrap()
                    .to_vec2()
                    .unwrap();
                for (l, map) in maps.iter().enumerate() {
                    let (d, a) = areas(&model, &pixels, &targets, l, &order_of(map), 8).unwrap();
                    let (rd, ra) = areas(
                        &model,
                        &pixels,
                        &targets,
                        l,
                        &random_order(map.len(), (i * 10 + l) as u64),
                        8,
                    )
                    .unwrap();
                    (del, ins, rdel, rins, n) = (del + d, ins + a, rdel + rd, rins + ra, n + 1.0);
                }
            }
            println!(
                "{name} {key}: deletion {:.3} (random {:.3}), insertion {:.3} (random {:.3})",
                del / n,
                rdel / n,
                ins / n,
                rins / n
            );
            // Occlusion is faithful by construction; the gradient methods are what they are on
            // random tiny weights (their maps match the reference implementations above),
            // reported in the README rather than asserted.
            if key == "occlusion" {
                assert!(
                    del < rdel && ins > rins,
                    "{name} {key}: deletion {del} vs {rdel}, insertion {ins} vs {rins}"
                );
            }
        }
    }
}
