//! One residual attention block on the CPU bf16 path, fused: open_clip `transformer.py`
//! `ResidualAttentionBlock.forward` (`x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`) over plain
//! float32 buffers instead of a candle op per step. LayerNorm and GELU write straight into
//! the GEMM's bf16 operand, and the output projections accumulate onto `x + bias`, so the
//! residual adds, the bias copies and the head permutes cost no pass of their own. The
//! arithmetic is the unfused path's (float32 LayerNorm, softmax, GELU and residual; bf16
//! products summed in float32) up to the order of some float32 additions (tested).

use super::{accumulate, attention, pack_a, Kernel, Packed};
use crate::model::config::Activation;
use crate::model::ops::{gelu_erf_row, layer_norm_row};

/// `nn.Linear` packed: the weight and its bias.
pub struct Linear<'a> {
    pub weight: &'a Packed,
    pub bias: &'a [f32],
}

/// `nn.LayerNorm`'s weight, bias and eps.
pub struct Norm {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub eps: f32,
}

pub struct Block<'a> {
    pub ln_1: &'a Norm,
    pub in_proj: Linear<'a>,
    pub out_proj: Linear<'a>,
    pub heads: usize,
    pub ln_2: &'a Norm,
    pub c_fc: Linear<'a>,
    pub c_proj: Linear<'a>,
    pub act: Activation,
    pub kernel: Kernel,
}

impl Block<'_> {
    /// `x` [b, t, d] row-major -> the block's output, same shape.
    pub fn forward(&self, x: &[f32], (b, t): (usize, usize), mask: Option<&[f32]>) -> Vec<f32> {
        let (d, m) = (self.ln_1.weight.len(), b * t);
        assert_eq!(x.len(), m * d, "input is not [b, t, d]");
        let normed = |x: &[f32], ln: &Norm| {
            pack_a(m, d, &self.kernel, |r, row| {
                layer_norm_row(&x[r * d..][..d], &ln.weight, &ln.bias, ln.eps, row)
            })
        };

        let mut qkv = self.in_proj.bias.repeat(m);
        // The q/k/v and c_fc GEMMs accumulate onto their bias repeated on every row.
        accumulate(&normed(x, self.ln_1), self.in_proj.weight, &mut qkv);
        let heads = attention::forward(&qkv, (b, t, d), self.heads, mask);
        let heads = pack_a(m, d, &self.kernel, |r, row| {
            row.copy_from_slice(&heads[r * d..][..d])
        });
        let mut x1 = plus_bias(x, self.out_proj.bias);
        accumulate(&heads, self.out_proj.weight, &mut x1);

        let mut h = self.c_fc.bias.repeat(m);
        accumulate(&normed(&x1, self.ln_2), self.c_fc.weight, &mut h);
        let hw = self.c_fc.bias.len();
        let act = pack_a(m, hw, &self.kernel, |r, row| {
            let src = &h[r * hw..][..hw];
            match self.act {
                Activation::Gelu => gelu_erf_row(src, row),
                Activation::QuickGelu => {
                    // candle's `x * sigmoid(1.702 x)`, as the unfused path computes it.
                    for (o, &v) in row.iter_mut().zip(src) {
                        *o = v * (1.0 / (1.0 + (-(v * 1.702)).exp()));
                    }
                }
            }
        });
        let mut out = plus_bias(&x1, self.c_proj.bias);
        accumulate(&act, self.c_proj.weight, &mut out);
        out
    }
}

/// `x` [m, d] plus `bias` on every row: the residual, which an output projection's GEMM then
/// accumulates onto.
fn plus_bias(x: &[f32], bias: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(bias.len()) {
        out.extend(row.iter().zip(bias).map(|(x, b)| x + b));
    }
    out
}
