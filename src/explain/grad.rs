//! Explain (gradients): the last blocks of the image tower run again with what their backward
//! needs kept — the attention probabilities, the ln_1 output — and a hand-written backward
//! from the explained scores to them, for every label at once (labels are the leading
//! dimension). The blocks before run forward only, with the fast kernels. Ports the
//! computation `torch.autograd` does for open_clip's `ResidualAttentionBlock`
//! (`transformer.py`: pre-LN attention with `nn.MultiheadAttention`, then the MLP), checked
//! against it by `tests/fixtures/make_explain_reference.py`.

use crate::model::config::Activation;
use crate::model::ops::LayerNorm;
use crate::model::transformer::ResidualAttentionBlock;
use candle_core::{DType, Result, Tensor, D};

/// One block's forward, kept for its backward. `t` tokens, width `d`, `h` heads.
struct BlockTrace {
    x_in: Tensor,
    /// ln_1(x_in) [t, d]: Grad-CAM's activations.
    y1: Tensor,
    /// Per head, [h, t, hd]; `q` already divided by sqrt(hd).
    q: Tensor,
    k: Tensor,
    v: Tensor,
    /// Attention probabilities [h, t, t].
    a: Tensor,
    x_mid: Tensor,
    /// The MLP's pre-activation [t, mlp].
    pre: Tensor,
}

/// The explained blocks' forward for one image (`x`: [t, d], float32).
pub struct Trace {
    blocks: Vec<BlockTrace>,
    /// The class token after the last block [d].
    pub cls: Tensor,
}

fn f32(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::F32)
}

/// `x @ wt + b` for a transposed weight, in float32.
fn dense(x: &Tensor, wt: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.matmul(&f32(wt)?)?.broadcast_add(&f32(b)?)
}

fn act(a: Activation, x: &Tensor) -> Result<Tensor> {
    match a {
        Activation::Gelu => crate::model::ops::gelu_erf(x),
        Activation::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
    }
}

/// d act / d x.
fn act_grad(a: Activation, x: &Tensor) -> Result<Tensor> {
    match a {
        Activation::Gelu => {
            // Phi(x) + x phi(x)
            let cdf = ((x * std::f64::consts::FRAC_1_SQRT_2)?.erf()? + 1.0)? * 0.5;
            let pdf = (x.sqr()? * -0.5)?.exp()? * (1.0 / (2.0 * std::f64::consts::PI).sqrt());
            cdf? + (x * pdf?)?
        }
        Activation::QuickGelu => {
            let s = candle_nn::ops::sigmoid(&(x * 1.702)?)?;
            let one_minus = (s.ones_like()? - &s)?;
            &s + ((x * &s)? * one_minus)? * 1.702
        }
    }
}

fn ln_forward(ln: &LayerNorm, x: &Tensor) -> Result<Tensor> {
    let (w, b, eps) = ln.parts();
    candle_nn::ops::layer_norm(x, &f32(w)?, &f32(b)?, eps)
}

/// LayerNorm's backward over the last dimension: `x` [.., d] its input, `dy` [k, .., d].
fn ln_backward(ln: &LayerNorm, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let (w, _, eps) = ln.parts();
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let rstd = (var + f64::from(eps))?.sqrt()?.recip()?;
    let xhat = xc.broadcast_mul(&rstd)?;
    let g = dy.broadcast_mul(&f32(w)?)?;
    let mean_g = g.mean_keepdim(D::Minus1)?;
    let mean_gx = g.broadcast_mul(&xhat)?.mean_keepdim(D::Minus1)?;
    g.broadcast_sub(&mean_g)?
        .broadcast_sub(&xhat.broadcast_mul(&mean_gx)?)?
        .broadcast_mul(&rstd)
}

/// Runs `blocks` on `x` [t, d], keeping what the backward needs.
pub fn forward(blocks: &[ResidualAttentionBlock], x: &Tensor) -> Result<Trace> {
    let mut x = f32(x)?;
    let mut traces = Vec::with_capacity(blocks.len());
    for block in blocks {
        let p = block.parts();
        let (t, d) = x.dims2()?;
        let (h, hd) = (p.heads, d / p.heads);
        let y1 = ln_forward(p.ln_1, &x)?;
        let (wt, b) = p.in_proj.parts()?;
        let qkv = dense(&y1, &wt, b)?
            .reshape((t, 3, h, hd))?
            .permute((1, 2, 0, 3))?;
        let q = (qkv.get(0)?.contiguous()? * (1.0 / (hd as f64).sqrt()))?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let a = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?)?)?;
        let o = a.matmul(&v)?.transpose(0, 1)?.reshape((t, d))?;
        let (wo, bo) = p.out_proj.parts()?;
        let x_mid = (&x + dense(&o, &wo, bo)?)?;
        let y2 = ln_forward(p.ln_2, &x_mid)?;
        let (wf, bf) = p.c_fc.parts()?;
        let pre = dense(&y2, &wf, bf)?;
        let (wp, bp) = p.c_proj.parts()?;
        let x_out = (&x_mid + dense(&act(p.act, &pre)?, &wp, bp)?)?;
        traces.push(BlockTrace {
            x_in: x,
            y1,
            q,
            k,
            v,
            a,
            x_mid,
            pre,
        });
        x = x_out;
    }
    Ok(Trace {
        blocks: traces,
        cls: x.get(0)?,
    })
}

/// What the backward returns: per explained block, d score / d attention probabilities
/// [k, h, t, t] (the last block's only on the class token's row, the only row the score
/// depends on), and d score / d ln_1 output of the last block [k, t, d].
pub struct Grads {
    pub attention: Vec<Tensor>,
    pub probs: Vec<Tensor>,
    pub ln_1: Tensor,
    pub ln_1_grad: Tensor,
}

/// Backward from `d_cls` [k, d] (each label's gradient at the last block's class token).
pub fn backward(blocks: &[ResidualAttentionBlock], trace: &Trace, d_cls: &Tensor) -> Result<Grads> {
    let n = blocks.len();
    let (kn, d) = d_cls.dims2()?;
    let t = trace.blocks[n - 1].x_in.dim(0)?;
    // The gradient of the stream after the block: the last block's only on token 0.
    let rest = Tensor::zeros((kn, t - 1, d), DType::F32, d_cls.device())?;
    let mut dx_out = Tensor::cat(&[&d_cls.unsqueeze(1)?, &rest], 1)?;
    let mut attention = vec![Tensor::zeros(1, DType::F32, d_cls.device())?; n];
    let mut ln_1_grad = None;
    for i in (0..n).rev() {
        let (p, tr) = (blocks[i].parts(), &trace.blocks[i]);
        let (h, hd) = (p.heads, d / p.heads);
        // MLP: x_out = x_mid + act(fc(ln_2(x_mid))) @ Wp + bp
        let (wp, _) = p.c_proj.parts()?;
        let dg = dx_out.broadcast_matmul(&f32(&wp)?.t()?)?;
        let dpre = dg.broadcast_mul(&act_grad(p.act, &tr.pre)?)?;
        let (wf, _) = p.c_fc.parts()?;
        let dy2 = dpre.broadcast_matmul(&f32(&wf)?.t()?)?;
        let dx_mid = (&dx_out + ln_backward(p.ln_2, &tr.x_mid, &dy2)?)?;
        // Attention: x_mid = x_in + (A v) @ Wo + bo
        let (wo, _) = p.out_proj.parts()?;
        let d_o = dx_mid
            .broadcast_matmul(&f32(&wo)?.t()?)?
            .reshape((kn, t, h, hd))?
            .transpose(1, 2)?
            .contiguous()?; // [k, h, t, hd]
        let da = d_o.broadcast_matmul(&tr.v.t()?)?; // [k, h, t, t]
        let dv = tr.a.t()?.broadcast_matmul(&d_o)?;
        // softmax: ds = A * (dA - sum_j dA A)
        let row = da.broadcast_mul(&tr.a)?.sum_keepdim(D::Minus1)?;
        let ds = tr.a.broadcast_mul(&da.broadcast_sub(&row)?)?;
        let dq = ds
            .broadcast_matmul(&tr.k)?
            .affine(1.0 / (hd as f64).sqrt(), 0.0)?;
        let dk = ds.transpose(2, 3)?.broadcast_matmul(&tr.q)?;
        // [k, 3, h, t, hd] -> [k, t, 3 * d], the fused in_proj's layout.
        let dqkv = Tensor::stack(&[dq, dk, dv], 1)?
            .permute((0, 3, 1, 2, 4))?
            .reshape((kn, t, 3 * d))?;
        let (wi, _) = p.in_proj.parts()?;
        let dy1 = dqkv.broadcast_matmul(&f32(&wi)?.t()?)?;
        attention[i] = da;
        if i == n - 1 {
            ln_1_grad = Some(dy1.clone());
        }
        dx_out = (&dx_mid + ln_backward(p.ln_1, &tr.x_in, &dy1)?)?;
    }
    let last = &trace.blocks[n - 1];
    Ok(Grads {
        attention,
        probs: trace.blocks.iter().map(|b| b.a.clone()).collect(),
        ln_1: last.y1.clone(),
        ln_1_grad: ln_1_grad.expect("at least one block"),
    })
}

/// d score / d class token for scores `S_k = scale * (e . w_k)` (e the normalised embedding):
/// `ln_post`, `proj` and the normalisation run backward for the effective label vectors
/// `g_e` [k, embed] (d score / d e).
pub fn cls_gradient(
    cls: &Tensor,
    ln_post: &LayerNorm,
    proj: &Tensor,
    g_e: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let z = ln_forward(ln_post, &cls.unsqueeze(0)?)?; // [1, d]
    let f = z.matmul(&f32(proj)?)?; // [1, e]
    let norm = f.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    let e = f.broadcast_div(&norm)?;
    // de -> df: (g - e (e . g)) / |f|
    let eg = g_e.broadcast_mul(&e)?.sum_keepdim(D::Minus1)?;
    let df = g_e
        .broadcast_sub(&e.broadcast_mul(&eg)?)?
        .broadcast_div(&norm)?;
    let dz = df.matmul(&f32(proj)?.t()?)?;
    let dc = ln_backward(ln_post, &cls.unsqueeze(0)?, &dz)?;
    Ok((dc, e.squeeze(0)?))
}
