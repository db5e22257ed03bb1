//! Explain (faithfulness): whether a map points at what the score depends on, without ground
//! truth (Petsiuk et al. 2018's deletion and insertion). Deletion: patches are blanked (0 in
//! normalised space) in the map's order, most relevant first, and the score is read after each
//! step; insertion: patches are revealed on a blank image in the same order. A curve's area is
//! the mean explained score over its steps (the same ends for every order of one image and
//! label, so areas compare across orders): a faithful map gives a lower deletion area and a
//! higher insertion area than a random order.

use super::maps::Targets;
use crate::model::Clip;
use crate::score::normalised_rows;
use anyhow::Result;
use candle_core::Tensor;

/// The normalised deletion and insertion areas of one label's patch order.
pub fn areas(
    model: &Clip,
    pixels: &[f32],
    targets: &Targets,
    label: usize,
    order: &[usize],
    steps: usize,
) -> Result<(f64, f64)> {
    let cfg = &model.config.model.vision;
    let (g, p, size) = (cfg.grid(), cfg.patch_size, cfg.image_size);
    let counts: Vec<usize> = (0..=steps).map(|s| s * order.len() / steps).collect();
    // Image i of each curve has the first counts[i] patches of `order` changed.
    let mut images = Vec::with_capacity(2 * counts.len() * pixels.len());
    for insertion in [false, true] {
        for &n in &counts {
            let mut img = if insertion {
                vec![0f32; pixels.len()]
            } else {
                pixels.to_vec()
            };
            for &cell in &order[..n] {
                let (r, c) = (cell / g, cell % g);
                for ch in 0..3 {
                    for y in r * p..(r + 1) * p {
                        let at = ch * size * size + y * size + c * p;
                        if insertion {
                            img[at..at + p].copy_from_slice(&pixels[at..at + p]);
                        } else {
                            img[at..at + p].fill(0.0);
                        }
                    }
                }
            }
            images.extend(img);
        }
    }
    let n = 2 * counts.len();
    let mut values = Vec::with_capacity(n);
    for chunk in images.chunks(8 * 3 * size * size) {
        let b = chunk.len() / (3 * size * size);
        let batch = Tensor::from_vec(chunk.to_vec(), (b, 3, size, size), model.device())?;
        for e in normalised_rows(&model.encode_images(&batch)?)? {
            values.push(targets.values(&e)[label]);
        }
    }
    let (del, ins) = values.split_at(counts.len());
    let area = |curve: &[f64]| curve.iter().sum::<f64>() / curve.len() as f64;
    Ok((area(del), area(ins)))
}

/// Patch indices by decreasing map value (ties by index).
pub fn order_of(map: &[f32]) -> Vec<usize> {
    let mut o: Vec<usize> = (0..map.len()).collect();
    o.sort_by(|&a, &b| map[b].total_cmp(&map[a]).then(a.cmp(&b)));
    o
}

/// A seeded shuffle of `0..n` (SplitMix64, Fisher-Yates), the random baseline's order.
pub fn random_order(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = crate::eval::metrics::Rng::new(seed);
    let mut o: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        o.swap(i, rng.below(i + 1));
    }
    o
}
