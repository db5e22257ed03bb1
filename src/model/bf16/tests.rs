//! The bf16 GEMM against a float64 reference on odd shapes, for every kernel this CPU runs.

use super::*;

/// Seeded values in [-1, 1) from an LCG: the same on every run.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn round_all(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| from_bf16(to_bf16(x))).collect()
}

/// For each output: (x . w_j + b_j in float64, sum |x_i w_ji|).
fn reference(x: &[f32], w: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut a) = (f64::from(b[j]), f64::from(b[j]).abs());
            for t in 0..k {
                let p = f64::from(x[i * k + t]) * f64::from(w[j * k + t]);
                s += p;
                a += p.abs();
            }
            out.push((s, a));
        }
    }
    out
}

/// Worst error over the output, in units of `sum |x w|`.
fn worst(got: &[f32], want: &[(f64, f64)]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&g, &(s, a))| (f64::from(g) - s).abs() / a.max(1e-30))
        .fold(0.0, f64::max)
}

/// (m, k, n): rows across the tile heights, k odd and across KC's blocks (1024 = one block of
/// 512 pairs, 2101 = two and a part), n across the 32-column panels.
const SHAPES: [(usize, usize, usize); 7] = [
    (1, 1, 1),
    (7, 3, 33),
    (257, 300, 40),
    (1023, 513, 65),
    (13, 1024, 96),
    (25, 2101, 45),
    (2, 2, 31),
];

#[test]
fn every_kernel_is_within_bf16_rounding_of_float64() {
    // The emulated AVX-512 kernel runs the pair layout and 12-row tiles on any CPU.
    for kernel in available()
        .into_iter()
        .chain([kernels::emulated_avx512_bf16()])
    {
        for &(m, k, n) in &SHAPES {
            let (x, w, b) = (values(m * k, 1), values(n * k, 2), values(n, 3));
            let got = linear(&x, m, &Packed::from_rows(&w, n, k), Some(&b), &kernel);
            assert_eq!(got.len(), m * n);
            // Each input rounded by at most 2^-9 (relative), so each product by 2^-8 + 2^-18;
            // then k float32 additions.
            let bound = 2f64.powi(-8) + 2f64.powi(-18) + (k + 2) as f64 * 2f64.powi(-24);
            let e = worst(&got, &reference(&x, &w, &b, m, n, k));
            assert!(
                e <= bound,
                "{}: {m}x{k}x{n}: error {e:e} > {bound:e}",
                kernel.name
            );
            // And it does round: the same product on bf16-exact inputs is far closer (below).
            let (xr, wr) = (round_all(&x), round_all(&w));
            let got = linear(&xr, m, &Packed::from_rows(&wr, n, k), Some(&b), &kernel);
            let e = worst(&got, &reference(&xr, &wr, &b, m, n, k));
            let bound = (k + 2) as f64 * 2f64.powi(-24);
            assert!(
                e <= bound,
                "{}: exact inputs {m}x{k}x{n}: {e:e}",
                kernel.name
            );
        }
    }
}

#[test]
fn the_widening_kernels_agree_to_the_bit() {
    let (m, k, n) = (37, 515, 70);
    let (x, w) = (values(m * k, 4), values(n * k, 5));
    let packed = Packed::from_rows(&w, n, k);
    let kernels: Vec<Kernel> = available()
        .into_iter()
        .filter(|k| k.a_form == AForm::Rounded)
        .collect();
    let outs: Vec<Vec<f32>> = kernels
        .iter()
        .map(|kern| linear(&x, m, &packed, None, kern))
        .collect();
    for (kern, out) in kernels.iter().zip(&outs) {
        assert_eq!(
            out, &outs[0],
            "{} differs from {}",
            kern.name, kernels[0].name
        );
    }
}

/// Where the CPU has `vdpbf16ps`, the emulation the tests use elsewhere is the instruction:
/// the same sums to the bit (so its pass on other CPUs speaks for the real kernel's layout).
#[test]
fn the_emulated_avx512_kernel_is_the_instruction_to_the_bit() {
    let Some(real) = available().into_iter().find(|k| k.name == "avx512-bf16") else {
        eprintln!("no AVX512-BF16 on this CPU: nothing to compare");
        return;
    };
    let (m, k, n) = (37, 515, 70);
    let (x, w, b) = (values(m * k, 6), values(n * k, 7), values(n, 8));
    let packed = Packed::from_rows(&w, n, k);
    let emulated = kernels::emulated_avx512_bf16();
    let got = linear(&x, m, &packed, Some(&b), &real);
    let want = linear(&x, m, &packed, Some(&b), &emulated);
    let differ = got
        .iter()
        .zip(&want)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(differ, 0, "{differ} of {} outputs differ", got.len());
}

#[test]
fn rounds_to_nearest_even_like_half() {
    let mut specials = vec![
        0.0f32,
        -0.0,
        1.0,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-40,
        f32::INFINITY,
        f32::NEG_INFINITY,
        // Ties: 1 + 2^-8 rounds down to 1 (even), 1 + 3 * 2^-8 up to 1 + 2^-6.
        1.0 + 2f32.powi(-8),
        1.0 + 3.0 * 2f32.powi(-8),
    ];
    specials.extend(values(100_000, 7).iter().map(|v| v * 1e3));
    for x in specials {
        assert_eq!(to_bf16(x), half::bf16::from_f32(x).to_bits(), "{x:e}");
    }
    assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
}

/// The AVX-512 build of the A packing (with a GELU row fill, as the fused block uses it) gives
/// the baseline build's operand to the bit, in both forms, on odd shapes and special values.
#[test]
fn both_builds_of_the_packing_agree_to_the_bit() {
    #[cfg(target_arch = "x86_64")]
    if !is_x86_feature_detected!("avx512f") {
        eprintln!("no AVX-512F here: the two builds are the same code");
    }
    for kernel in [
        Kernel::select(),
        available().pop().unwrap(),
        kernels::emulated_avx512_bf16(),
    ] {
        for &(m, k) in &[(1, 1), (7, 3), (13, 1024), (25, 2101)] {
            let mut x: Vec<f32> = values(m * k, 11).iter().map(|v| v * 8.0).collect();
            x[0] = f32::NAN;
            x[m * k / 2] = f32::INFINITY;
            let fill =
                |r: usize, row: &mut [f32]| crate::model::ops::gelu_erf_row(&x[r * k..][..k], row);
            let (a, b) = (
                pack_a_built(m, k, &kernel, fill, true),
                pack_a_built(m, k, &kernel, fill, false),
            );
            assert_eq!((a.lda, a.data.len()), (b.lda, b.data.len()));
            assert!(a.data == b.data, "{}: {m}x{k}", kernel.name);
        }
    }
}

/// Packing a weight read as bf16 from its bits gives what packing its float32 values gives.
#[test]
fn packing_from_bf16_bits_equals_packing_from_float32() {
    let (n, k) = (45, 37);
    let w = round_all(&values(n * k, 5));
    let bits: Vec<u16> = w.iter().map(|&v| to_bf16(v)).collect();
    let (a, b) = (
        Packed::from_rows(&w, n, k),
        Packed::from_bf16_rows(&bits, n, k),
    );
    assert_eq!((a.n, a.k), (b.n, b.k));
    assert!(a.data == b.data);
    assert_eq!(b.unpacked_t()[k * n - 1], w[n * k - 1]);
}

#[test]
fn unpacked_weight_is_the_rounded_transpose() {
    let (n, k) = (45, 7);
    let w = values(n * k, 8);
    let t = Packed::from_rows(&w, n, k).unpacked_t();
    for j in 0..n {
        for i in 0..k {
            assert_eq!(t[i * n + j], from_bf16(to_bf16(w[j * k + i])));
        }
    }
}
