//! The image tower: open_clip `transformer.py` `VisionTransformer` (pool_type "tok"):
//! patch embedding -> class token + positions -> ln_pre -> blocks -> ln_post(token 0) @ proj.

use super::config::{Activation, VisionConfig};
use super::ops::{patchify, LayerNorm};
use super::params::Params;
use super::transformer::{ln, Transformer};
use candle_core::{Module, Result, Tensor};

pub struct VisionTransformer {
    /// `conv1.weight` [width, 3, p, p] as a [3*p*p, width] matrix: stride = kernel, so the
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
    /// Keys under `visual.`; shapes were checked against the config by `weights::load`.
    pub fn new(cfg: &VisionConfig, act: Activation, p: Params) -> Result<Self> {
        let (w, ps) = (cfg.width, cfg.patch_size);
        let conv = p.take("conv1.weight")?.reshape((w, 3 * ps * ps))?;
        Ok(Self {
            patch_weight: super::ops::transpose2d(&conv)?,
            class_embedding: p.take("class_embedding")?.reshape((1, 1, w))?,
            positional_embedding: p.take("positional_embedding")?,
            ln_pre: ln(p.pp("ln_pre"))?,
            transformer: Transformer::new(cfg.layers, cfg.heads, act, p.pp("transformer"))?,
            ln_post: ln(p.pp("ln_post"))?,
            proj: p.take("proj")?,
            patch: ps,
        })
    }

    /// `pixels`: [B, 3, S, S] normalised -> the residual stream entering block `upto`
    /// ([B, 1 + grid^2, width]), for `explain`, which runs the last blocks itself.
    pub fn stream_before(&self, pixels: &Tensor, upto: usize) -> Result<Tensor> {
        let x = self.tokens(pixels)?;
        self.transformer.blocks()[..upto]
            .iter()
            .try_fold(x, |x, b| b.forward(&x, None))
    }

    /// The features of a residual stream entering block `from` ([B, T, width]): the rest of
    /// the tower, exactly as `forward` runs it.
    pub fn forward_from(&self, x: &Tensor, from: usize) -> Result<Tensor> {
        let x = self.transformer.blocks()[from..]
            .iter()
            .try_fold(x.clone(), |x, b| b.forward(&x, None))?;
        let cls = self.ln_post.forward(&x.narrow(1, 0, 1)?.squeeze(1)?)?;
        cls.matmul(&self.proj)
    }

    /// The blocks, ln_post and proj, for `explain`.
    pub fn head(
        &self,
    ) -> (
        &[super::transformer::ResidualAttentionBlock],
        &LayerNorm,
        &Tensor,
    ) {
        (self.transformer.blocks(), &self.ln_post, &self.proj)
    }

    /// Patch embedding (a stride-p convolution only sees the first g*p rows and columns),
    /// class token, positions, ln_pre.
    fn tokens(&self, pixels: &Tensor) -> Result<Tensor> {
        let b = pixels.dim(0)?;
        let (k, width) = self.patch_weight.dims2()?;
        let patches = patchify(pixels, self.patch)?;
        let tokens = patches.dim(1)?;
        let x = patches
            .reshape((b * tokens, k))?
            .matmul(&self.patch_weight)?
            .reshape((b, tokens, width))?;
        let cls = self.class_embedding.broadcast_as((b, 1, width))?;
        let x = Tensor::cat(&[&cls, &x], 1)?.broadcast_add(&self.positional_embedding)?;
        self.ln_pre.forward(&x)
    }

    /// `pixels`: [B, 3, S, S] normalised; returns unnormalised features [B, embed_dim].
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let x = self.transformer.forward(&self.tokens(pixels)?, None)?;
        // ln_post is per token, so applying it to token 0 alone is exact.
        let cls = self.ln_post.forward(&x.narrow(1, 0, 1)?.squeeze(1)?)?;
        cls.matmul(&self.proj)
    }
}
