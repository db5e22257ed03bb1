//! Multi-head attention of the fused bf16 block (`block.rs`): open_clip `transformer.py`
//! `ResidualAttentionBlock.attention` -> `nn.MultiheadAttention` (`F.multi_head_attention_forward`:
//! q scaled by 1/sqrt(head_dim), `softmax(q k^T + mask) v`), in float32 as autocast keeps it.
//! Each (image, head) reads its q, k and v in place from the in_proj output through strides
//! and writes its columns of the result, so no head is ever copied out or permuted back.

use super::OutPtr;
use rayon::prelude::*;

/// `qkv` [b * t, 3d] (q, k, v side by side, heads as contiguous column slices), `mask`
/// [t, t] added to the scores (the text tower's causal mask): the heads' outputs, [b * t, d].
pub fn forward(
    qkv: &[f32],
    (b, t, d): (usize, usize, usize),
    heads: usize,
    mask: Option<&[f32]>,
) -> Vec<f32> {
    assert_eq!(qkv.len(), b * t * 3 * d, "qkv is not [b * t, 3d]");
    assert!(mask.is_none_or(|m| m.len() == t * t), "mask is not [t, t]");
    assert!(
        heads > 0 && d % heads == 0,
        "{heads} heads do not divide width {d}"
    );
    let hd = d / heads;
    let scale = (1.0 / (hd as f64).sqrt()) as f32;
    let mut out = vec![0f32; b * t * d];
    let dst = OutPtr(out.as_mut_ptr());
    let dst = &dst;
    let exp_row = softmax_kernel();
    (0..b * heads)
        .into_par_iter()
        .for_each_init(Vec::new, |scores: &mut Vec<f32>, task| {
            let (bi, h) = (task / heads, task % heads);
            scores.resize(t * t, 0.0);
            let base = &qkv[bi * t * 3 * d..][..t * 3 * d];
            let (q, k, v) = (
                &base[h * hd..],
                &base[d + h * hd..],
                &base[2 * d + h * hd..],
            );
            let ld = (3 * d) as isize;
            // Safety (both calls): the strides stay inside `base` for t rows of hd values;
            // `scores` is [t, t]; this task alone writes its head's hd columns of `out`.
            unsafe {
                // scores = scale * q k^T (k^T: row c, column j at k[j * 3d + c]).
                gemm::gemm(
                    t,
                    t,
                    hd,
                    scores.as_mut_ptr(),
                    1,
                    t as isize,
                    false,
                    q.as_ptr(),
                    1,
                    ld,
                    k.as_ptr(),
                    ld,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            for (i, row) in scores.chunks_exact_mut(t).enumerate() {
                if let Some(mask) = mask {
                    for (s, m) in row.iter_mut().zip(&mask[i * t..]) {
                        *s += m;
                    }
                }
                exp_row(row);
            }
            unsafe {
                gemm::gemm(
                    t,
                    hd,
                    t,
                    dst.0.add(bi * t * d + h * hd),
                    1,
                    d as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    t as isize,
                    v.as_ptr(),
                    1,
                    ld,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
    out
}

/// The widest vector build of `softmax` this CPU runs (the sums are in 16 lanes in every
/// build, so they all give the same values).
fn softmax_kernel() -> fn(&mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        return |row| unsafe { softmax_avx512(row) };
    }
    softmax
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_avx512(row: &mut [f32]) {
    softmax(row)
}

/// `torch.softmax` over one row: e^(x - max) / sum, with `exp_nonpositive`.
#[inline(always)]
pub fn softmax(row: &mut [f32]) {
    const L: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; L];
    let (body, tail) = row.split_at(row.len() / L * L);
    for c in body.chunks_exact(L) {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    let max = tail
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sums = [0f32; L];
    let (body, tail) = row.split_at_mut(row.len() / L * L);
    for c in body.chunks_exact_mut(L) {
        for (s, v) in sums.iter_mut().zip(c) {
            *v = exp_nonpositive(*v - max);
            *s += *v;
        }
    }
    for v in tail.iter_mut() {
        *v = exp_nonpositive(*v - max);
    }
    let sum = sums.iter().chain(tail.iter()).sum::<f32>();
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// e^x for the x <= 0 of a softmax (x minus the row's max), in a form the compiler vectorises
/// (libm's scalar `expf` was 5% of the bf16 image tower): Cephes' `expf`, x = n ln 2 + r with
/// |r| <= ln 2 / 2 and a degree-5 polynomial, within 2 ulp (tested); 0 below -87 (where e^x
/// is under 2^-125, against a sum >= 1); NaN stays NaN.
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub fn exp_nonpositive(x: f32) -> f32 {
    // Adding 1.5 * 2^23 rounds to an integer in the default rounding mode.
    const ROUND: f32 = 12_582_912.0;
    // Not `clamp`, which keeps NaN: NaN must not reach the bit tricks below (it is put
    // back at the end).
    #[allow(clippy::manual_clamp)]
    let xc = x.max(-87.0).min(0.0);
    let shifted = xc * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = xc - n * 0.693_359_375 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_15e-4_f32;
    p = p * r + 1.398_199_95e-3;
    p = p * r + 8.333_451_9e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_55e-1;
    p = p * r + 5.000_000_1e-1;
    let e = p * r * r + r + 1.0;
    // n's integer value is in `shifted`'s low mantissa bits (n in [-126, 0]); reading it
    // there instead of through `n as i32` (which saturates, so scalar code) keeps the loop
    // in vector registers.
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let two_n = f32::from_bits(n_int.wrapping_add(127) << 23);
    if x >= -87.0 {
        e * two_n
    } else if x < -87.0 {
        0.0
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_float64_and_keeps_its_edges() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let want = f64::from(x).exp();
            let got = f64::from(exp_nonpositive(x));
            // One float32 ulp at `want`: 2^(exponent - 23).
            let ulp = 2f64.powi(want.log2().floor() as i32 - 23);
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-88.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_matches_float64_with_a_masked_tail() {
        for len in [1, 15, 16, 77, 257] {
            let mut row: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7)
                .collect();
            for v in row.iter_mut().skip(len / 2 + 1) {
                *v = f32::NEG_INFINITY;
            }
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let e: Vec<f64> = row.iter().map(|&v| (f64::from(v) - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            let want: Vec<f64> = e.iter().map(|v| v / sum).collect();
            let mut got = row.clone();
            softmax(&mut got);
            let mut vector = row.clone();
            softmax_kernel()(&mut vector);
            #[cfg(target_arch = "x86_64")]
            if !is_x86_feature_detected!("avx512f") {
                eprintln!("no AVX-512F here: the two softmax builds are the same code");
            }
            assert_eq!(got, vector, "the vector build differs ({len})");
            for (g, w) in got.iter().zip(&want) {
                // exp's 2 ulp, the float32 sum's and the division's rounding: measured worst
                // 5.1e-7 relative (len 257).
                assert!((f64::from(*g) - w).abs() <= 1e-6 * w, "{g} vs {w}");
            }
        }
    }
}
