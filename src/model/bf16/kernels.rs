//! The micro-kernels of the bf16 GEMM: one MR x 32 tile of `A . B` over a block of k-pairs,
//! with B packed as bf16 pairs (see `pack`). Three kernels, one layout: AVX-512 BF16
//! (`vdpbf16ps`, two products per lane per instruction), AVX2+FMA and plain Rust, the last two
//! widening the bf16 weights to float32 in registers. A product of two bf16 values is exact in
//! float32, so every kernel computes the same sums; only the order of the float32 additions
//! differs between the first and the other two (which agree to the bit).

/// Columns per packed panel: two 512-bit registers of 16 float32 lanes.
pub const NR: usize = 32;
/// The most rows a kernel's tile has; tile buffers are this tall.
pub const MR_MAX: usize = 12;

/// How a kernel wants A: bf16 pairs as u32 (low half = even k), each tile of rows packed
/// pair-major so that a step's broadcasts read one run of memory, or float32 rows already
/// rounded to bf16 (the widening kernels broadcast each value on its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AForm {
    Pairs,
    Rounded,
}

#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub name: &'static str,
    /// Rows per tile and the form of A: fixed by the kernel function (which writes `mr` rows
    /// into the output), so not settable from outside.
    pub(super) mr: usize,
    pub(super) a_form: AForm,
    /// `(a, lda, b, kc, c, ldc)`: `a` points at the tile's first value: for `Pairs`, pair `p`
    /// of row `r` at `p * lda + r` (`lda` = the tile's rows); for `Rounded`, value `i` of row
    /// `r` at `r * lda + i`. `b` points at the panel's block of `kc` pairs (64 u16 each); adds
    /// the tile's sums over the block to the `mr` x 32 floats at `c` (row stride `ldc`).
    run: unsafe fn(*const u8, usize, *const u16, usize, *mut f32, usize),
}

impl Kernel {
    /// # Safety
    /// `a` must hold `mr` rows of at least `kc` pairs at stride `lda`, `b` `kc * 64` values,
    /// `c` `mr` rows of 32 floats at stride `ldc`, which no one else touches meanwhile.
    pub unsafe fn run(
        &self,
        a: *const u8,
        lda: usize,
        b: *const u16,
        kc: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        (self.run)(a, lda, b, kc, c, ldc)
    }

    /// The best kernel this CPU runs, or the one `WHYXRAY_BF16_KERNEL` names
    /// (`avx512-bf16`, `avx2-fma`, `portable`) when the CPU has it.
    pub fn select() -> Kernel {
        let all = available();
        if let Ok(want) = std::env::var("WHYXRAY_BF16_KERNEL") {
            if let Some(k) = all.iter().find(|k| k.name == want) {
                return *k;
            }
        }
        all[0]
    }
}

/// The kernels this CPU can run, best first (the portable one always last).
pub fn available() -> Vec<Kernel> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16") {
            out.push(Kernel {
                name: "avx512-bf16",
                mr: 12,
                a_form: AForm::Pairs,
                run: x86::tile_avx512_bf16,
            });
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            out.push(Kernel {
                name: "avx2-fma",
                mr: 4,
                a_form: AForm::Rounded,
                run: x86::tile_avx2_fma,
            });
        }
    }
    out.push(Kernel {
        name: "portable",
        mr: 4,
        a_form: AForm::Rounded,
        run: tile_portable,
    });
    out
}

/// float32 -> bf16, rounding to nearest even (as `vcvtne2ps2bf16` and torch do); NaN stays NaN.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    // Both computed and one selected, so that a loop of these vectorises.
    let quiet_nan = (b >> 16) | 0x40;
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
    (if x.is_nan() { quiet_nan } else { rounded }) as u16
}

#[inline(always)]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `c[r][j] += acc[r][j]` for a tile's rows.
///
/// # Safety
/// `c` must hold `acc.len()` rows of `NR` floats at stride `ldc`.
unsafe fn add_rows(acc: &[[f32; NR]], c: *mut f32, ldc: usize) {
    for (r, acc) in acc.iter().enumerate() {
        let row = std::slice::from_raw_parts_mut(c.add(r * ldc), NR);
        for (o, a) in row.iter_mut().zip(acc) {
            *o += a;
        }
    }
}

/// Plain Rust, any CPU: even k then odd k per pair, as the AVX2 kernel.
unsafe fn tile_portable(
    a: *const u8,
    lda: usize,
    b: *const u16,
    kc: usize,
    c: *mut f32,
    ldc: usize,
) {
    const MR: usize = 4;
    let a = a.cast::<f32>();
    let mut acc = [[0f32; NR]; MR];
    for p in 0..kc {
        let bp = std::slice::from_raw_parts(b.add(p * 2 * NR), 2 * NR);
        for (r, acc) in acc.iter_mut().enumerate() {
            let (ae, ao) = (*a.add(r * lda + 2 * p), *a.add(r * lda + 2 * p + 1));
            for (c, acc) in acc.iter_mut().enumerate() {
                *acc += ae * from_bf16(bp[2 * c]);
                *acc += ao * from_bf16(bp[2 * c + 1]);
            }
        }
    }
    add_rows(&acc, c, ldc);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::NR;
    use std::arch::x86_64::*;

    /// 12 rows x 32 columns in 24 accumulators; each step broadcasts the tile's 12 pairs,
    /// which lie side by side (48 bytes).
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn tile_avx512_bf16(
        a: *const u8,
        lda: usize,
        b: *const u16,
        kc: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        const MR: usize = 12;
        let a = a.cast::<i32>();
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for p in 0..kc {
            let bp = b.add(p * 2 * NR);
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(NR).cast()));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(p * lda + r)));
                acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (h, acc) in acc.iter().enumerate() {
                let o = c.add(r * ldc + 16 * h);
                _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), *acc));
            }
        }
    }

    /// 4 rows x 16 columns at a time in 8 accumulators (6 rows spilled to the stack: 0.7x), each half of the panel in turn; each
    /// loaded register of 8 pairs gives the even k (shifted up) and the odd k (masked).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_avx2_fma(
        a: *const u8,
        lda: usize,
        b: *const u16,
        kc: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        const MR: usize = 4;
        let a = a.cast::<f32>();
        let high = _mm256_set1_epi32(0xffff_0000_u32 as i32);
        for half in 0..2 {
            let mut acc = [[_mm256_setzero_ps(); 2]; MR];
            for p in 0..kc {
                let bp = b.add(p * 2 * NR + half * NR);
                for v in 0..2 {
                    let w = _mm256_loadu_si256(bp.add(v * 16).cast());
                    let even = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(w));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let ae = _mm256_broadcast_ss(&*a.add(r * lda + 2 * p));
                        acc[v] = _mm256_fmadd_ps(ae, even, acc[v]);
                    }
                    let odd = _mm256_castsi256_ps(_mm256_and_si256(w, high));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let ao = _mm256_broadcast_ss(&*a.add(r * lda + 2 * p + 1));
                        acc[v] = _mm256_fmadd_ps(ao, odd, acc[v]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (v, acc) in acc.iter().enumerate() {
                    let o = c.add(r * ldc + half * 16 + 8 * v);
                    _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), *acc));
                }
            }
        }
    }
}

/// `vdpbf16ps` in plain Rust over the AVX-512 kernel's layout and indexing (A as u32 pairs,
/// 12-row tiles), so the pair form of A and its offsets are tested on CPUs without the
/// instruction: per lane, the odd product then the even one added to the float32 sum, as
/// Intel's pseudo-code orders them.
#[cfg(test)]
pub(super) fn emulated_avx512_bf16() -> Kernel {
    unsafe fn tile(a: *const u8, lda: usize, b: *const u16, kc: usize, c: *mut f32, ldc: usize) {
        let a = a.cast::<u32>();
        let mut acc = [[0f32; NR]; MR_MAX];
        for p in 0..kc {
            // Lane c of the 512-bit load: the u32 at u16 index 2c, low half = even k.
            let bp = std::slice::from_raw_parts(b.add(p * 2 * NR), 2 * NR);
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = *a.add(p * lda + r);
                let (ae, ao) = (from_bf16(av as u16), from_bf16((av >> 16) as u16));
                for (acc, bv) in acc.iter_mut().zip(bp.chunks_exact(2)) {
                    let (be, bo) = (from_bf16(bv[0]), from_bf16(bv[1]));
                    *acc += ao * bo;
                    *acc += ae * be;
                }
            }
        }
        add_rows(&acc, c, ldc);
    }
    Kernel {
        name: "avx512-bf16 (emulated)",
        mr: MR_MAX,
        a_form: AForm::Pairs,
        run: tile,
    }
}
