//! Explain (maps): one image and its labels -> a raw map per label over the patch grid.
//! - `gae`: Chefer et al. 2021's gradient-weighted attention, as the CLIP notebook of
//!   Transformer-MM-Explainability computes it (`interpret`): for each explained block,
//!   `cam = mean_heads(clamp(dS/dA * A, min 0))`, `R <- R + cam @ R` from `R = I`; the map is
//!   `R[CLS, patches]`.
//! - `gradcam`: pytorch-grad-cam's ViT recipe: the last block's `ln_1` output on the patch
//!   tokens as activations, weights = gradients averaged over the grid, ReLU of the sum.
//! - `occlusion`: forward passes only: each window of patches set to 0 in normalised pixel
//!   space; a patch's value is the mean drop of the score over the windows covering it.

use super::grad::{backward, cls_gradient, forward};
use crate::model::Clip;
use crate::score::{class_embedding, normalised_rows, Ensemble};
use anyhow::{Context, Result};
use candle_core::{DType, Tensor, D};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Gradient-weighted attention over the last `layers` blocks.
    Gae {
        layers: usize,
    },
    GradCam,
    /// Windows of `window` x `window` patches, every `stride` patches.
    Occlusion {
        window: usize,
        stride: usize,
    },
}

/// What is explained for each label: its logit (scale x cosine; for `--multilabel` the
/// positive-vs-negative log-odds) or its probability.
pub struct Targets {
    /// Each label's effective text vector (its class embedding, or for mean-similarity the
    /// mean of its prompt embeddings, which gives the same score).
    pos: Vec<Vec<f32>>,
    /// `--multilabel`: the negative side's.
    neg: Option<Vec<Vec<f32>>>,
    scale: f32,
    probability: bool,
}

impl Targets {
    /// From each label's normalised prompt embeddings, as classify scores them.
    pub fn new(
        pos: &[Vec<Vec<f32>>],
        neg: Option<&[Vec<Vec<f32>>]>,
        ensemble: Ensemble,
        scale: f32,
        probability: bool,
    ) -> Self {
        let vector = |prompts: &Vec<Vec<f32>>| match ensemble {
            Ensemble::MeanEmbedding => class_embedding(prompts),
            Ensemble::MeanSimilarity => {
                let n = prompts.len() as f32;
                let mut m = vec![0f32; prompts[0].len()];
                prompts
                    .iter()
                    .for_each(|p| m.iter_mut().zip(p).for_each(|(a, b)| *a += b / n));
                m
            }
        };
        Self {
            pos: pos.iter().map(vector).collect(),
            neg: neg.map(|n| n.iter().map(vector).collect()),
            scale,
            probability,
        }
    }

    fn logits(&self, e: &[f32]) -> Vec<f64> {
        let dot = |w: &[f32]| {
            w.iter()
                .zip(e)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>()
        };
        let s = f64::from(self.scale);
        match &self.neg {
            None => self.pos.iter().map(|w| s * dot(w)).collect(),
            Some(neg) => self
                .pos
                .iter()
                .zip(neg)
                .map(|(p, n)| s * (dot(p) - dot(n)))
                .collect(),
        }
    }

    /// The explained value of each label for a normalised embedding `e`.
    pub fn values(&self, e: &[f32]) -> Vec<f64> {
        let l = self.logits(e);
        match (self.probability, &self.neg) {
            (false, _) => l,
            (true, Some(_)) => l.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
            (true, None) => {
                let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let ex: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = ex.iter().sum();
                ex.iter().map(|v| v / z).collect()
            }
        }
    }

    /// d value / d e for each label, [labels, embed].
    fn gradients(&self, e: &[f32]) -> Vec<Vec<f32>> {
        let s = self.scale;
        let diff: Vec<Vec<f32>> = match &self.neg {
            None => self
                .pos
                .iter()
                .map(|w| w.iter().map(|v| s * v).collect())
                .collect(),
            Some(neg) => self
                .pos
                .iter()
                .zip(neg)
                .map(|(p, n)| p.iter().zip(n).map(|(a, b)| s * (a - b)).collect())
                .collect(),
        };
        if !self.probability {
            return diff;
        }
        let v = self.values(e);
        match &self.neg {
            Some(_) => {
                // sigmoid'(L) = P (1 - P) = exp(-|L|) / (1 + exp(-|L|))^2, exact when saturated.
                let l = self.logits(e);
                diff.iter()
                    .zip(&l)
                    .map(|(g, l)| {
                        let q = (-l.abs()).exp();
                        let d = q / (1.0 + q).powi(2);
                        g.iter().map(|x| (d * f64::from(*x)) as f32).collect()
                    })
                    .collect()
            }
            None => {
                // dP_k = P_k (dS_k - sum_j P_j dS_j) = P_k sum_{j != k} P_j (dS_k - dS_j):
                // the second form keeps its digits when P_k is near 1.
                (0..diff.len())
                    .map(|k| {
                        (0..e.len())
                            .map(|c| {
                                let dk = f64::from(diff[k][c]);
                                let s: f64 = (0..diff.len())
                                    .filter(|&j| j != k)
                                    .map(|j| v[j] * (dk - f64::from(diff[j][c])))
                                    .sum();
                                (v[k] * s) as f32
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }
}

/// One image explained: the raw maps [labels, grid, grid], and the image's normalised
/// embedding, from the same forward pass classify makes (so its scores are classify's).
pub struct Explained {
    pub maps: Tensor,
    pub embedding: Vec<f32>,
}

/// The raw maps of one preprocessed image (`pixels`: [3, S, S]).
pub fn explain(model: &Clip, pixels: &Tensor, targets: &Targets, method: Method) -> Result<Tensor> {
    Ok(
        explain_batch(model, &pixels.unsqueeze(0)?, targets, method)?
            .remove(0)
            .maps,
    )
}

/// Each image of a batch (`pixels`: [n, 3, S, S]) explained. The blocks before the explained
/// ones run once for the whole batch, as classify runs them; the traced pass and its backward
/// run per image.
pub fn explain_batch(
    model: &Clip,
    pixels: &Tensor,
    targets: &Targets,
    method: Method,
) -> Result<Vec<Explained>> {
    let grid = model.config.model.vision.grid();
    let labels = targets.pos.len();
    let n = pixels.dim(0)?;
    let shape = |maps: Tensor| maps.reshape((labels, grid, grid));
    let layers = match method {
        Method::Occlusion { window, stride } => {
            return (0..n)
                .map(|i| {
                    let (maps, embedding) =
                        occlusion(model, &pixels.get(i)?, targets, window, stride)?;
                    Ok(Explained {
                        maps: shape(maps)?,
                        embedding,
                    })
                })
                .collect();
        }
        Method::Gae { layers } => layers,
        Method::GradCam => 1,
    };
    let vision = model.vision();
    let first = vision.head().0.len() - layers.clamp(1, vision.head().0.len());
    let px = pixels.to_device(model.device())?.to_dtype(model.dtype())?;
    let stream = vision.stream_before(&px, first)?;
    let embeddings = normalised_rows(&vision.forward_from(&stream, first)?.to_dtype(DType::F32)?)?;
    embeddings
        .into_iter()
        .enumerate()
        .map(|(i, embedding)| {
            let attention = matches!(method, Method::Gae { .. });
            let maps = gradient_maps(model, &stream.get(i)?, first, targets, attention)?;
            Ok(Explained {
                maps: shape(maps)?,
                embedding,
            })
        })
        .collect()
}

/// `gae` (attention) or `gradcam` maps [labels, patches] of one image whose residual stream
/// entering block `first` is `x` [t, d]: one traced pass over the blocks from `first` and its
/// backward, for every label at once.
fn gradient_maps(
    model: &Clip,
    x: &Tensor,
    first: usize,
    targets: &Targets,
    attention: bool,
) -> Result<Tensor> {
    let (blocks, ln_post, proj) = model.vision().head();
    let device = model.device();
    let explained = &blocks[first..];
    let trace = forward(explained, x)?;
    // The embedding the traced pass gives (float32 throughout), its gradient per label.
    let (_, e) = cls_gradient(
        &trace.cls,
        ln_post,
        proj,
        &Tensor::zeros((1, proj.dim(1)?), DType::F32, device)?,
    )?;
    let e: Vec<f32> = e.to_vec1()?;
    let g: Vec<f32> = targets.gradients(&e).concat();
    let g_e = Tensor::from_vec(g, (targets.pos.len(), e.len()), device)?;
    let (d_cls, _) = cls_gradient(&trace.cls, ln_post, proj, &g_e)?;
    let grads = backward(explained, &trace, &d_cls)?;
    let t = grads.probs[0].dim(D::Minus1)?;
    if attention {
        let k = targets.pos.len();
        let mut r = Tensor::eye(t, DType::F32, device)?
            .unsqueeze(0)?
            .repeat((k, 1, 1))?;
        for (da, a) in grads.attention.iter().zip(&grads.probs) {
            let cam = da.broadcast_mul(a)?.relu()?.mean(1)?; // [k, t, t]
            r = (&r + cam.matmul(&r)?)?;
        }
        Ok(r.narrow(1, 0, 1)?.squeeze(1)?.narrow(1, 1, t - 1)?)
    } else {
        let act = grads.ln_1.narrow(0, 1, t - 1)?; // [p, d]
        let gr = grads.ln_1_grad.narrow(1, 1, t - 1)?; // [k, p, d]
        let w = gr.mean(1)?; // [k, d]
        Ok(w.matmul(&act.t()?)?.relu()?)
    }
}

/// Occlusion maps [labels, patches]: the base score minus the score with each window of
/// patches zeroed, averaged per patch over the windows that cover it.
fn occlusion(
    model: &Clip,
    pixels: &Tensor,
    targets: &Targets,
    window: usize,
    stride: usize,
) -> Result<(Tensor, Vec<f32>)> {
    let cfg = &model.config.model.vision;
    let (g, p) = (cfg.grid(), cfg.patch_size);
    let starts = |n: usize| -> Vec<usize> {
        let last = n.saturating_sub(window);
        let mut s: Vec<usize> = (0..=last).step_by(stride.max(1)).collect();
        if s.last() != Some(&last) {
            s.push(last);
        }
        s
    };
    let windows: Vec<(usize, usize)> = starts(g)
        .iter()
        .flat_map(|&r| starts(g).into_iter().map(move |c| (r, c)))
        .collect();
    let base: Vec<f32> = pixels.flatten_all()?.to_vec1()?;
    let size = cfg.image_size;
    let embed = |imgs: Vec<f32>, n: usize| -> Result<Vec<Vec<f32>>> {
        let batch = Tensor::from_vec(imgs, (n, 3, size, size), model.device())?;
        normalised_rows(&model.encode_images(&batch).context("image tower")?)
    };
    let score = |imgs: Vec<f32>, n: usize| -> Result<Vec<Vec<f64>>> {
        Ok(embed(imgs, n)?.iter().map(|e| targets.values(e)).collect())
    };
    let embedding = embed(base.clone(), 1)?.remove(0);
    let full = targets.values(&embedding);
    let k = full.len();
    let mut sum = vec![0f64; k * g * g];
    let mut count = vec![0usize; g * g];
    for chunk in windows.chunks(8) {
        let mut imgs = Vec::with_capacity(chunk.len() * base.len());
        for &(r, c) in chunk {
            let mut img = base.clone();
            for ch in 0..3 {
                for y in r * p..((r + window).min(g)) * p {
                    let row = ch * size * size + y * size;
                    img[row + c * p..row + ((c + window).min(g)) * p].fill(0.0);
                }
            }
            imgs.extend(img);
        }
        let scores = score(imgs, chunk.len())?;
        for (&(r, c), s) in chunk.iter().zip(&scores) {
            for y in r..(r + window).min(g) {
                for x in c..(c + window).min(g) {
                    count[y * g + x] += 1;
                    for l in 0..k {
                        sum[l * g * g + y * g + x] += full[l] - s[l];
                    }
                }
            }
        }
    }
    let maps: Vec<f32> = sum
        .iter()
        .enumerate()
        .map(|(i, v)| (v / count[i % (g * g)].max(1) as f64) as f32)
        .collect();
    Ok((
        Tensor::from_vec(maps, (k, g * g), model.device())?,
        embedding,
    ))
}
