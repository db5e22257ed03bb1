//! Probe (features): what a probe sees of an image — its L2-normalised embedding, or, for a
//! concept bottleneck (KnoBo's `dot_product` baseline, PCBM's and LaBo's first stage), its
//! cosine with each concept of a bank, standardised per concept. A concept probe keeps the
//! concepts' text embeddings, so it is applied exactly as it was fitted, with no text tower.

use crate::concepts::Bank;
use crate::score::cosine;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConceptFeatures {
    pub bank: Bank,
    pub templates: Vec<String>,
    /// Each concept's normalised text embedding (its prompts' normalised mean).
    pub embeddings: Vec<Vec<f32>>,
    /// Per-concept mean and standard deviation of the cosines the z-scores are taken against.
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Where they come from: the training images, or a `--reference-stats` file.
    pub stats_source: String,
}

impl ConceptFeatures {
    /// The cosine of a normalised image embedding with each concept.
    pub fn cosines(&self, image: &[f32]) -> Vec<f32> {
        self.embeddings.iter().map(|e| cosine(image, e)).collect()
    }

    /// `(cos - mean) / std` per concept (0 for a concept that never varied).
    pub fn z(&self, cosines: &[f32]) -> Vec<f64> {
        crate::concepts::z_scores(cosines, &self.mean, &self.std)
    }
}

/// How much each concept pushed an image toward `class`: weight x z-score, largest first, only
/// those that pushed toward it (for a binary probe, whose one row scores class 1, class 0's
/// weights are its negation).
pub fn contributions(
    coef: &[f64],
    classes: usize,
    class: usize,
    z: &[f64],
    k: usize,
) -> Vec<(usize, f64, f64)> {
    let d = z.len();
    let weights: Vec<f64> = if classes == 2 {
        let sign = if class == 1 { 1.0 } else { -1.0 };
        coef[..d].iter().map(|w| sign * w).collect()
    } else {
        coef[class * d..(class + 1) * d].to_vec()
    };
    let mut all: Vec<(usize, f64, f64)> = (0..d)
        .map(|j| (j, weights[j] * z[j], weights[j]))
        .filter(|c| c.1 > 0.0)
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}
