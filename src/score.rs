//! Score: unnormalised features -> L2-normalised embeddings -> `softmax(S * cos)` over labels,
//! as the model card does (`F.normalize`, `100.0 * image @ text.T`, softmax), in float32.

use anyhow::Result;
use candle_core::Tensor;

/// Rows of a [N, D] tensor, each divided by `max(||x||, 1e-12)` like `F.normalize`.
pub fn normalised_rows(features: &Tensor) -> Result<Vec<Vec<f32>>> {
    let mut rows = features
        .to_dtype(candle_core::DType::F32)?
        .to_vec2::<f32>()?;
    for row in &mut rows {
        normalise(row);
    }
    Ok(rows)
}

pub fn normalise(row: &mut [f32]) {
    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    row.iter_mut().for_each(|v| *v /= norm);
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `softmax(scale * cos(image, label))` over the labels.
pub fn probabilities(image: &[f32], labels: &[Vec<f32>], scale: f32) -> Vec<f32> {
    let logits: Vec<f32> = labels.iter().map(|l| scale * cosine(image, l)).collect();
    softmax(&logits)
}

pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_of_scaled_cosines() {
        let img = vec![1.0, 0.0];
        let labels = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let p = probabilities(&img, &labels, 100.0);
        assert!((p[0] - 1.0).abs() < 1e-6 && p[1] < 1e-40 && p[1] >= 0.0);
        let p = probabilities(&img, &labels, 0.0);
        assert_eq!(p, vec![0.5, 0.5]);
    }

    #[test]
    fn normalise_guards_zero_vectors() {
        let mut z = vec![0.0f32; 4];
        normalise(&mut z);
        assert!(z.iter().all(|v| *v == 0.0));
        let mut v = vec![3.0f32, 4.0];
        normalise(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
    }
}
