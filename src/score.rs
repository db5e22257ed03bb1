//! Score: unnormalised features -> L2-normalised embeddings -> `softmax(S * cos)` over labels,
//! as the model card does (`F.normalize`, `100.0 * image @ text.T`, softmax), in float32; with
//! prompt ensembles per class, and CheXzero's positive-vs-negative rule for `--multilabel`.

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

/// One embedding for a class from its normalised prompt embeddings: open_clip's
/// `build_zero_shot_classifier` (average, normalise again); one prompt is used as it is.
pub fn class_embedding(prompts: &[Vec<f32>]) -> Vec<f32> {
    if prompts.len() == 1 {
        return prompts[0].clone();
    }
    let n = prompts.len() as f32;
    let mut mean = vec![0f32; prompts.first().map_or(0, Vec::len)];
    for p in prompts {
        mean.iter_mut().zip(p).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= n);
    normalise(&mut mean);
    mean
}

/// How several prompts make one class score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ensemble {
    /// open_clip's `build_zero_shot_classifier`: normalise each prompt embedding, average,
    /// normalise again; then one cosine per class.
    MeanEmbedding,
    /// The mean of the cosines with each prompt (MedCLIP's rule).
    MeanSimilarity,
}

/// A class's prompts on one side (for or against), ready to score images against.
enum Side {
    Embedding(Vec<f32>),
    Prompts(Vec<Vec<f32>>),
}

impl Side {
    fn new(prompts: Vec<Vec<f32>>, rule: Ensemble) -> Self {
        match rule {
            // One prompt: used as it is, exactly the model card's recipe (no second normalise).
            _ if prompts.len() == 1 => {
                Side::Embedding(prompts.into_iter().next().unwrap_or_default())
            }
            Ensemble::MeanSimilarity => Side::Prompts(prompts),
            Ensemble::MeanEmbedding => Side::Embedding(class_embedding(&prompts)),
        }
    }

    fn similarity(&self, image: &[f32]) -> f32 {
        match self {
            Side::Embedding(e) => cosine(image, e),
            Side::Prompts(ps) => ps.iter().map(|p| cosine(image, p)).sum::<f32>() / ps.len() as f32,
        }
    }
}

/// Images -> one probability per class: `softmax(S * sim)` over the classes, or with
/// `multilabel`, per class `softmax(S * [sim(pos), sim(neg)])[0]` (rows need not sum to 1).
pub struct Scorer {
    classes: Vec<(Side, Option<Side>)>,
    scale: f32,
}

impl Scorer {
    /// `pos[c]` / `neg[c]`: class c's normalised prompt embeddings (`neg` empty: single-label).
    pub fn new(
        pos: Vec<Vec<Vec<f32>>>,
        neg: Vec<Vec<Vec<f32>>>,
        rule: Ensemble,
        scale: f32,
    ) -> Self {
        let mut neg = neg.into_iter();
        let classes = pos
            .into_iter()
            .map(|p| {
                let n = neg
                    .next()
                    .filter(|n| !n.is_empty())
                    .map(|n| Side::new(n, rule));
                (Side::new(p, rule), n)
            })
            .collect();
        Self { classes, scale }
    }

    pub fn score(&self, image: &[f32]) -> Vec<f32> {
        let s = self.scale;
        if self.classes.iter().all(|(_, n)| n.is_none()) {
            let logits: Vec<f32> = self
                .classes
                .iter()
                .map(|(p, _)| s * p.similarity(image))
                .collect();
            return softmax(&logits);
        }
        self.classes
            .iter()
            .map(|(p, n)| {
                let neg = n.as_ref().map_or(0.0, |n| s * n.similarity(image));
                softmax(&[s * p.similarity(image), neg])[0]
            })
            .collect()
    }
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
    fn ensembles_and_multilabel() {
        let (a, b) = (vec![1.0f32, 0.0], vec![0.0f32, 1.0]);
        let diag = vec![std::f32::consts::FRAC_1_SQRT_2; 2];
        // One prompt each: both rules are the plain softmax.
        for rule in [Ensemble::MeanEmbedding, Ensemble::MeanSimilarity] {
            let s = Scorer::new(vec![vec![a.clone()], vec![b.clone()]], vec![], rule, 10.0);
            assert_eq!(
                s.score(&a),
                probabilities(&a, &[a.clone(), b.clone()], 10.0)
            );
        }
        // Two prompts a and b for one class: mean embedding is the diagonal (cos 0.707 with a),
        // mean similarity is (1 + 0) / 2.
        let two = || vec![vec![a.clone(), b.clone()], vec![diag.clone()]];
        let me = Scorer::new(two(), vec![], Ensemble::MeanEmbedding, 1.0).score(&a);
        assert!((me[0] - 0.5).abs() < 1e-6, "{me:?}");
        let ms = Scorer::new(two(), vec![], Ensemble::MeanSimilarity, 1.0).score(&a);
        assert!((ms[0] - softmax(&[0.5, std::f32::consts::FRAC_1_SQRT_2])[0]).abs() < 1e-6);
        // Multi-label: each class against its own negative.
        let ml = Scorer::new(
            vec![vec![a.clone()], vec![b.clone()]],
            vec![vec![b.clone()], vec![a.clone()]],
            Ensemble::MeanEmbedding,
            2.0,
        );
        let p = ml.score(&a);
        assert!(
            (p[0] - softmax(&[2.0, 0.0])[0]).abs() < 1e-6
                && (p[1] - softmax(&[0.0, 2.0])[0]).abs() < 1e-6
        );
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
