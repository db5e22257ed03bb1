//! `--dtype bf16` on the CPU: the towers' linear layers as GEMMs of float32 activations
//! (rounded to bf16 as they enter) with weights packed once at load as bf16, accumulating in
//! float32, as PyTorch's CPU autocast does; LayerNorm, softmax, GELU and the residual stream
//! stay float32. Hand-written because neither candle's CPU matmul nor the `gemm` crate has a
//! bf16 dot-product kernel (they widen bf16 to float32 and run the float32 kernel).
//!
//! Layout: the weight `W` [n, k] (torch `[out, in]`) becomes panels of 32 output columns; in
//! each panel, for each pair of k, 32 (even k, odd k) bf16 pairs: exactly the operand of
//! `vdpbf16ps`, which adds a pair's two products into each float32 lane.
//!
//! `block.rs` runs a whole residual block on these GEMMs (LayerNorm and GELU written straight
//! into the packed operand, residual and bias as the output's starting value), `attention.rs`
//! its float32 attention.

mod attention;
pub mod block;
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
        Self::from_bits(n, k, |i| to_bf16(w[i]))
    }

    /// From a row-major `[n, k]` weight already in bf16 (its bit patterns): no float32 copy.
    pub fn from_bf16_rows(w: &[u16], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight is not [n, k]");
        Self::from_bits(n, k, |i| w[i])
    }

    /// Value `i` of the row-major `[n, k]` weight, as bf16 bits, by `at(i)`.
    fn from_bits(n: usize, k: usize, at: impl Fn(usize) -> u16 + Sync) -> Self {
        let kp = k.div_ceil(2);
        let mut data = vec![0u16; n.div_ceil(NR) * kp * 2 * NR];
        data.par_chunks_mut(kp * 2 * NR)
            .enumerate()
            .for_each(|(panel, dst)| {
                for c in 0..NR.min(n - panel * NR) {
                    let row = (panel * NR + c) * k;
                    for i in 0..k {
                        dst[(i / 2) * 2 * NR + 2 * c + i % 2] = at(row + i);
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

/// The left operand `[m, k]` as a kernel reads it (`AForm`): rows padded to whole tiles
/// (zeros), k to whole pairs.
pub struct PackedA {
    data: Vec<u32>,
    lda: usize,
    m: usize,
    k: usize,
    kernel: Kernel,
}

/// A float32 `[m, k]`, packed.
fn prepare_a(x: &[f32], m: usize, k: usize, kernel: &Kernel) -> PackedA {
    pack_a(m, k, kernel, |r, row| row.copy_from_slice(&x[r * k..][..k]))
}

/// As `prepare_a`, with row `r` made by `fill(r, row)`: the fused block passes LayerNorm or
/// GELU here, so their float32 output goes straight into the GEMM's operand.
pub fn pack_a<F>(m: usize, k: usize, kernel: &Kernel, fill: F) -> PackedA
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    pack_a_built(m, k, kernel, fill, true)
}

/// `pack_a` with the AVX-512 build of its loop when `wide` and the CPU has AVX-512F, else the
/// baseline build (the tests compare the two).
fn pack_a_built<F>(m: usize, k: usize, kernel: &Kernel, fill: F, wide: bool) -> PackedA
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let (kp, mr) = (k.div_ceil(2), kernel.mr);
    let rows = m.div_ceil(mr) * mr;
    let (lda, tile_len) = match kernel.a_form {
        AForm::Pairs => (mr, mr * kp),
        AForm::Rounded => (2 * kp, mr * 2 * kp),
    };
    let mut data = vec![0u32; rows * tile_len / mr];
    let form = kernel.a_form;
    data.par_chunks_mut(tile_len).enumerate().for_each_init(
        || (Vec::new(), Vec::new()),
        |(row, bf), (tile, dst)| {
            let tile_rows = mr.min(m.saturating_sub(tile * mr));
            let job = TileJob {
                first: tile * mr,
                rows: tile_rows,
                k,
                mr,
                form,
            };
            #[cfg(target_arch = "x86_64")]
            if wide && is_x86_feature_detected!("avx512f") {
                // Safety: the CPU has AVX-512F.
                return unsafe { pack_tile_avx512(&job, &fill, row, bf, dst) };
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = wide;
            pack_tile(&job, &fill, row, bf, dst)
        },
    );
    PackedA {
        data,
        lda,
        m,
        k,
        kernel: *kernel,
    }
}

/// One tile of `pack_a`: rows `first..first + rows` (the rest of the tile stays zero).
struct TileJob {
    first: usize,
    rows: usize,
    k: usize,
    mr: usize,
    form: AForm,
}

/// `pack_tile` built for AVX-512, so that `fill` (LayerNorm, GELU), inlined here, and the
/// rounding to bf16 run 16 lanes wide instead of SSE2's 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_tile_avx512<F: Fn(usize, &mut [f32])>(
    job: &TileJob,
    fill: &F,
    row: &mut Vec<f32>,
    bf: &mut Vec<u16>,
    dst: &mut [u32],
) {
    pack_tile(job, fill, row, bf, dst)
}

#[inline(always)]
fn pack_tile<F: Fn(usize, &mut [f32])>(
    job: &TileJob,
    fill: &F,
    row: &mut Vec<f32>,
    bf: &mut Vec<u16>,
    dst: &mut [u32],
) {
    let (k, kp, mr) = (job.k, job.k.div_ceil(2), job.mr);
    row.resize(k, 0.0);
    bf.resize(2 * kp, 0);
    for r in 0..job.rows {
        fill(job.first + r, row);
        for (b, &v) in bf.iter_mut().zip(row.iter()) {
            *b = to_bf16(v);
        }
        match job.form {
            // Tile-major, then pair-major: pair p of the tile's row r at p * mr + r; a pair
            // is two consecutive bf16, little-endian (even k in the low half).
            AForm::Pairs => {
                for (p, pair) in bf.chunks_exact(2).enumerate() {
                    dst[p * mr + r] = u32::from(pair[0]) | u32::from(pair[1]) << 16;
                }
            }
            AForm::Rounded => {
                for (d, &b) in dst[r * 2 * kp..][..2 * kp].iter_mut().zip(bf.iter()) {
                    *d = u32::from(b) << 16;
                }
            }
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
    assert!(bias.is_none_or(|b| b.len() == n), "bias is not [n]");
    // The GEMM accumulates onto the bias repeated on every row, as the fused block's do.
    let mut out = bias.map_or_else(|| vec![0f32; m * n], |b| b.repeat(m));
    if m == 0 || n == 0 || k == 0 {
        return out;
    }
    accumulate(&prepare_a(x, m, k, kernel), w, &mut out);
    out
}

/// `out` [m, n] += A [m, k] times the packed weight's transpose.
pub fn accumulate(a: &PackedA, w: &Packed, out: &mut [f32]) {
    let (m, n, kp) = (a.m, w.n, w.pairs());
    let (kernel, lda, mr) = (&a.kernel, a.lda, a.kernel.mr);
    assert_eq!(a.k, w.k, "operands differ in k");
    assert_eq!(out.len(), m * n, "output is not [m, n]");
    let a_data = &a.data;
    if m == 0 || n == 0 || kp == 0 {
        return;
    }
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
                    let a = match kernel.a_form {
                        AForm::Pairs => r0 * kp + k0 * mr,
                        AForm::Rounded => r0 * lda + 2 * k0,
                    };
                    // Safety: `a` has whole tiles of rows, each with all `kp` pairs; the
                    // panel holds `kp` pairs of 64 values from `k0`.
                    let a = unsafe { a_data.as_ptr().add(a).cast() };
                    let tile_rows = mr.min(rows.end - r0);
                    if tile_rows == mr && cols == NR {
                        // Safety: rows r0.. r0 + mr < m, the panel's 32 columns < n; no
                        // other task touches this row block's panel.
                        unsafe { kernel.run(a, lda, b, kc, dst.0.add(r0 * n + panel * NR), n) };
                        continue;
                    }
                    // An edge tile: summed apart, then its rows and columns inside the output.
                    tile.fill(0.0);
                    unsafe { kernel.run(a, lda, b, kc, tile.as_mut_ptr(), NR) };
                    for r in 0..tile_rows {
                        // Safety: as above, for `cols` columns of row r0 + r.
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

    /// The packed weight, its bias and the kernel, for the fused block.
    pub fn parts(&self) -> (&Packed, &[f32], Kernel) {
        (&self.weight, &self.bias, self.kernel)
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
