//! The image tower: open_clip `transformer.py` `VisionTransformer` (pool_type "tok"):
//! patch embedding -> class token + positions -> ln_pre -> blocks -> ln_post(token 0) @ proj.

use super::config::{Activation, VisionConfig};
use super::ops::{patchify, LayerNorm};
use super::transformer::{ln, Transformer};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

pub struct VisionTransformer {
    /// `conv1.weight` [width, 3, p, p] flattened to [width, 3*p*p]: stride = kernel, so the
    /// convolution is one matmul over flattened patches.
    patch_weight: Tensor,
    class_embedding: Tensor,
    positional_embedding: Tensor,
    ln_pre: LayerNorm,
    transformer: Transformer,
    ln_post: LayerNorm,
    proj: Tensor,
    patch: usize,
}

impl VisionTransformer {
    pub fn new(
        cfg: &VisionConfig,
        embed_dim: usize,
        act: Activation,
        vb: VarBuilder,
    ) -> Result<Self> {
        let (w, p, g) = (cfg.width, cfg.patch_size, cfg.grid());
        let conv = vb.get((w, 3, p, p), "conv1.weight")?;
        Ok(Self {
            patch_weight: conv.reshape((w, 3 * p * p))?,
            class_embedding: vb.get(w, "class_embedding")?,
            positional_embedding: vb.get((g * g + 1, w), "positional_embedding")?,
            ln_pre: ln(w, vb.pp("ln_pre"))?,
            transformer: Transformer::new(
                cfg.layers,
                w,
                cfg.heads,
                cfg.mlp_width,
                act,
                vb.pp("transformer"),
            )?,
            ln_post: ln(w, vb.pp("ln_post"))?,
            proj: vb.get((w, embed_dim), "proj")?,
            patch: p,
        })
    }

    /// `pixels`: [B, 3, S, S] normalised; returns unnormalised features [B, embed_dim].
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let b = pixels.dim(0)?;
        let width = self.patch_weight.dim(0)?;
        // A stride-p convolution only sees the first g*p rows and columns (floor).
        let patches = patchify(pixels, self.patch)?;
        let x = patches.broadcast_matmul(&self.patch_weight.t()?)?;
        let cls = self
            .class_embedding
            .reshape((1, 1, width))?
            .broadcast_as((b, 1, width))?;
        let x = Tensor::cat(&[&cls, &x], 1)?.broadcast_add(&self.positional_embedding)?;
        let x = self.transformer.forward(&self.ln_pre.forward(&x)?, None)?;
        // ln_post is per token, so applying it to token 0 alone is exact.
        let cls = self.ln_post.forward(&x.narrow(1, 0, 1)?.squeeze(1)?)?;
        cls.matmul(&self.proj)
    }
}
