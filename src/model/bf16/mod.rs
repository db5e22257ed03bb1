//! `--dtype bf16` on the CPU: the towers' linear layers as GEMMs of float32 activations
//! (rounded to bf16 as they enter) with weights packed once at load as bf16, accumulating in
//! float32, as PyTorch's CPU autocast does; LayerNorm, softmax, GELU and the residual stream
//! stay float32. Hand-written because neither candle's CPU matmul nor the `gemm` crate has a
//! bf16 dot-product kernel (they widen bf16 to float32 and run the float32 kernel).
//!
//! Layout: the weight `W` [n, k] (torch `[out, in]`) becomes panels of 32 output columns; in
//! each panel, for each pair of k, 32 (even k, odd k) bf16 pairs: exactly the operand of
//! `vdpbf16ps`, which adds a pair's two products into each float32 lane.

mod kernels;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape};
pub use kernels::{available, from_bf16, to_bf16, AForm, Kernel};
use kernels::{MR_MAX, NR};
use rayon::prelude::*;
use std::sync::Arc;

/// k-pairs per cache block: a panel's block (512 pairs x 128 bytes = 64 KiB) stays in L2 and
/// streams through L1 while every row tile of the task passes over it. Measured on a Zen 5
/// (AVX512-BF16, 48 KiB L1d), 2 threads, 2056 x 4096 x 1024: 128 pairs 500 GFLOP/s, 256 pairs
/// 670-717, 512 pairs 717-773 (fewer passes over the output tile).
const KC: usize = 512;
/// Panels per task: the task's block of A is reused from L2 across them.
const PANELS_PER_TASK: usize = 4;

/// A linear layer's weight, packed.
pub struct Packed {
    n: usize,
    k: usize,
    /// `[panel][pair][column][2]` bf16, zero beyond `n` and `k`.
    data: Vec<u16>,
}

impl Packed {
    fn pairs(&self) -> usize {
        self.k.div_ceil(2)
    }

    fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// From a row-major float32 `[n, k]` weight (torch's `nn.Linear.weight`).
    pub fn from_rows(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight is not [n, k]");
        let kp = k.div_ceil(2);
        let mut data = vec![0u16; n.div_ceil(NR) * kp * 2 * NR];
        data.par_chunks_mut(kp * 2 * NR)
            .enumerate()
            .for_each(|(panel, dst)| {
                for c in 0..NR.min(n - panel * NR) {
                    let row = &w[(panel * NR + c) * k..][..k];
                    for (i, &v) in row.iter().enumerate() {
                        dst[(i / 2) * 2 * NR + 2 * c + i % 2] = to_bf16(v);
                    }
                }
            });
        Self { n, k, data }
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// The weight as the float32 values the kernels multiply by, `[k, n]` (for `explain`).
    pub fn unpacked_t(&self) -> Vec<f32> {
        let kp = self.pairs();
        let mut out = vec![0f32; self.k * self.n];
        for (i, row) in out.chunks_mut(self.n).enumerate() {
            for (j, o) in row.iter_mut().enumerate() {
                let (panel, c) = (j / NR, j % NR);
                *o = from_bf16(self.data[(panel * kp + i / 2) * 2 * NR + 2 * c + i % 2]);
            }
        }
        out
    }
}

/// A float32 `[m, k]` as the kernel reads it (`AForm`), rows padded to whole tiles (zeros),
/// k to whole pairs; returns it with the kernel's `lda`.
fn prepare_a(x: &[f32], m: usize, k: usize, kernel: &Kernel) -> (Vec<u32>, usize) {
    let (kp, mr) = (k.div_ceil(2), kernel.mr);
    let rows = m.div_ceil(mr) * mr;
    match kernel.a_form {
        AForm::Pairs => {
            // Tile-major, then pair-major: pair p of the tile's row r at p * mr + r.
            let mut a = vec![0u32; rows * kp];
            a.par_chunks_mut(mr * kp)
                .zip(x.par_chunks(mr * k))
                .for_each(|(dst, src)| {
                    for (r, row) in src.chunks(k).enumerate() {
                        for (p, pair) in row.chunks(2).enumerate() {
                            let hi = pair.get(1).map_or(0, |&v| u32::from(to_bf16(v)));
                            dst[p * mr + r] = u32::from(to_bf16(pair[0])) | hi << 16;
                        }
                    }
                });
            (a, mr)
        }
        AForm::Rounded => {
            let lda = 2 * kp;
            let mut a = vec![0u32; rows * lda];
            a.par_chunks_mut(lda)
                .zip(x.par_chunks(k))
                .for_each(|(dst, src)| {
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d = u32::from(to_bf16(v)) << 16;
                    }
                });
            (a, lda)
        }
    }
}

struct OutPtr(*mut f32);
// Safety: every task writes a disjoint block of rows x panels of the output.
unsafe impl Sync for OutPtr {}

/// `x` [m, k] float32 row-major times the packed weight's transpose, plus `bias`: [m, n].
pub fn linear(x: &[f32], m: usize, w: &Packed, bias: Option<&[f32]>, kernel: &Kernel) -> Vec<f32> {
    let (n, k) = (w.n, w.k);
    assert_eq!(x.len(), m * k, "input is not [m, k]");
    let mut out = vec![0f32; m * n];
    if m == 0 || n == 0 {
        return out;
    }
    if let Some(b) = bias {
        out.par_chunks_mut(n).for_each(|row| row.copy_from_slice(b));
    }
    if k == 0 {
        return out;
    }
    let (a, lda) = prepare_a(x, m, k, kernel);
    let (kp, mr) = (w.pairs(), kernel.mr);
    // Row blocks of whole tiles, about 96 rows; tasks are (row block, group of panels).
    let mc = (96 / mr).max(1) * mr;
    let row_blocks = m.div_ceil(mc);
    let groups = w.panels().div_ceil(PANELS_PER_TASK);
    let dst = OutPtr(out.as_mut_ptr());
    let dst = &dst;
    (0..row_blocks * groups).into_par_iter().for_each(|task| {
        let (rb, g) = (task / groups, task % groups);
        let rows = rb * mc..((rb + 1) * mc).min(m);
        let panels = g * PANELS_PER_TASK..((g + 1) * PANELS_PER_TASK).min(w.panels());
        let mut tile = [0f32; MR_MAX * NR];
        for k0 in (0..kp).step_by(KC) {
            let kc = KC.min(kp - k0);
            for panel in panels.clone() {
                let b = w.data[(panel * kp + k0) * 2 * NR..].as_ptr();
                let cols = NR.min(n - panel * NR);
                for r0 in rows.clone().step_by(mr) {
                    let a_off = match kernel.a_form {
                        AForm::Pairs => r0 * kp + k0 * mr,
                        AForm::Rounded => r0 * lda + 2 * k0,
                    };
                    // Safety: `a` has whole tiles of rows, each with all `kp` pairs; the
                    // panel holds `kp` pairs of 64 values from `k0`.
                    unsafe {
                        kernel.run(a.as_ptr().add(a_off).cast(), lda, b, kc, &mut tile);
                    }
                    for r in 0..mr.min(rows.end - r0) {
                        // Safety: row r0 + r < m, columns inside the panel and < n; no other
                        // task touches this row block's panel.
                        let o = unsafe {
                            std::slice::from_raw_parts_mut(
                                dst.0.add((r0 + r) * n + panel * NR),
                                cols,
                            )
                        };
                        for (o, t) in o.iter_mut().zip(&tile[r * NR..]) {
                            *o += t;
                        }
                    }
                }
            }
        }
    });
    out
}

/// A packed linear layer as a candle op on contiguous float32 CPU tensors [rows, k].
pub struct LinearOp {
    weight: Arc<Packed>,
    bias: Vec<f32>,
    kernel: Kernel,
}

impl LinearOp {
    pub fn new(weight: Arc<Packed>, bias: Vec<f32>, kernel: Kernel) -> Self {
        Self {
            weight,
            bias,
            kernel,
        }
    }

    pub fn out_features(&self) -> usize {
        self.weight.n
    }
}

impl CustomOp1 for LinearOp {
    fn name(&self) -> &'static str {
        "bf16-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, k) = l.shape().dims2()?;
        let x = match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => &v[a..b],
            _ => candle_core::bail!("bf16 linear: the input must be contiguous float32"),
        };
        if k != self.weight.k {
            candle_core::bail!("bf16 linear: input width {k}, weight {}", self.weight.k);
        }
        let y = linear(x, rows, &self.weight, Some(&self.bias), &self.kernel);
        Ok((CpuStorage::F32(y), Shape::from((rows, self.weight.n))))
    }
}

#[cfg(test)]
mod tests;
