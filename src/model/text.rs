//! The text tower: open_clip `model.py` `CLIP.encode_text`: token + position embeddings ->
//! causally masked blocks -> ln_final -> the end-of-text position (argmax of ids) @ text_projection.

use super::config::{Activation, TextConfig};
use super::ops::LayerNorm;
use super::params::Params;
use super::transformer::{causal_mask, ln, Transformer};
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::Embedding;

pub struct TextTransformer {
    token_embedding: Embedding,
    positional_embedding: Tensor,
    transformer: Transformer,
    ln_final: LayerNorm,
    text_projection: Tensor,
}

impl TextTransformer {
    /// Text keys sit at the top level of the state dict (no `text.` prefix) in open_clip's `CLIP`.
    pub fn new(cfg: &TextConfig, act: Activation, p: Params) -> Result<Self> {
        Ok(Self {
            token_embedding: Embedding::new(p.take("token_embedding.weight")?, cfg.width),
            positional_embedding: p.take("positional_embedding")?,
            transformer: Transformer::new(cfg.layers, cfg.heads, act, p.pp("transformer"))?,
            ln_final: ln(p.pp("ln_final"))?,
            text_projection: p.take("text_projection")?,
        })
    }

    /// `ids`: rows of `context_length` token ids; returns unnormalised features [N, embed_dim].
    pub fn forward(&self, ids: &[Vec<u32>], device: &Device) -> Result<Tensor> {
        // Pool at the first largest id (torch argmax), i.e. the end-of-text token.
        let eot: Vec<usize> = ids.iter().map(|row| first_argmax(row)).collect();
        // Under the causal mask no position sees a later one, so positions past the last
        // end-of-text token cannot change any pooled feature: run only up to it.
        let len = eot.iter().max().map_or(1, |m| m + 1);
        let flat: Vec<u32> = ids
            .iter()
            .flat_map(|row| row[..len].iter().copied())
            .collect();
        let ids_t = Tensor::from_vec(flat, (ids.len(), len), device)?;
        let x = self
            .token_embedding
            .forward(&ids_t)?
            .broadcast_add(&self.positional_embedding.narrow(0, 0, len)?)?;
        let x = self
            .transformer
            .forward(&x, Some(&causal_mask(len, device)?.to_dtype(x.dtype())?))?;
        let rows = eot
            .iter()
            .enumerate()
            .map(|(i, &pos)| x.get(i)?.get(pos))
            .collect::<Result<Vec<_>>>()?;
        let pooled = self.ln_final.forward(&Tensor::stack(&rows, 0)?)?;
        pooled.matmul(&self.text_projection)
    }
}

fn first_argmax(row: &[u32]) -> usize {
    let max = row.iter().copied().max().unwrap_or(0);
    row.iter().position(|&v| v == max).unwrap_or(0)
}
