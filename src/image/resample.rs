//! Pillow's `Image.resize` for 8-bit images, integer for integer: separable antialiased
//! bicubic (a = -0.5) or bilinear with 22-bit fixed-point weights and a uint8 image between the
//! passes (Pillow `Resample.c`), and Pillow's NEAREST (used for palette images). open_clip
//! resizes through Pillow, so exact pixels need this algorithm, not a float resize.

use crate::model::config::Interpolation;
use std::ops::Range;

/// An interleaved 8-bit image, `channels` values per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image8 {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

impl Image8 {
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<u8>) -> Self {
        assert_eq!(data.len(), width * height * channels, "image buffer size");
        Self {
            width,
            height,
            channels,
            data,
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Fixed-point taps for one axis: output `i` reads `len[i]` inputs from `start[i]`.
struct Taps {
    start: Vec<usize>,
    len: Vec<usize>,
    ksize: usize,
    weights: Vec<i32>,
}

/// Pillow `precompute_coeffs` + `normalize_coeffs_8bpc`, in the same floating-point order.
/// Only the outputs in `range` are computed (a crop needs no others), indexed from its start.
fn taps(n_in: usize, n_out: usize, interp: Interpolation, range: Range<usize>) -> Taps {
    let (filter, support): (fn(f64) -> f64, f64) = match interp {
        Interpolation::Bicubic => (bicubic, 2.0),
        Interpolation::Bilinear => (bilinear, 1.0),
    };
    let scale = n_in as f64 / n_out as f64;
    let filterscale = scale.max(1.0);
    let support = support * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let ss = 1.0 / filterscale;
    let n = range.len();
    let mut t = Taps {
        start: vec![0; n],
        len: vec![0; n],
        ksize,
        weights: vec![0; n * ksize],
    };
    let mut k = vec![0f64; ksize];
    for (slot, i) in range.enumerate() {
        let center = (i as f64 + 0.5) * scale;
        // C casts truncate toward zero, as `as i64` does.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
        let taps_here = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(taps_here) {
            *kx = filter(((x + xmin) as f64 - center + 0.5) * ss);
            ww += *kx;
        }
        for (x, kx) in k.iter().enumerate().take(taps_here) {
            let w = if ww != 0.0 { kx / ww } else { *kx };
            let scaled = w * f64::from(1u32 << PRECISION_BITS);
            t.weights[slot * ksize + x] = if w < 0.0 {
                (scaled - 0.5) as i32
            } else {
                (scaled + 0.5) as i32
            };
        }
        t.start[slot] = xmin;
        t.len[slot] = taps_here;
    }
    t
}

fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's rounding start plus a widening multiply-add over contiguous taps, which the
/// compiler vectorises.
#[inline(always)]
fn dot(s: &[u8], w: &[i32]) -> i32 {
    (1i32 << (PRECISION_BITS - 1))
        + s.iter()
            .zip(w)
            .map(|(&p, &k)| i32::from(p) * k)
            .sum::<i32>()
}

/// Columns `cols` of the image resized to width `n_out`.
#[inline(always)]
fn resample_horizontal(
    img: &Image8,
    n_out: usize,
    cols: Range<usize>,
    interp: Interpolation,
) -> Image8 {
    let t = taps(img.width, n_out, interp, cols.clone());
    let (c, w_out) = (img.channels, cols.len());
    let mut out = vec![0u8; w_out * img.height * c];
    // Interleaved channels are split into planes row by row, so that each channel's taps are
    // contiguous too.
    let mut planes = vec![0u8; if c > 1 { img.width * c } else { 0 }];
    for (src, dst) in img
        .data
        .chunks_exact(img.width * c)
        .zip(out.chunks_exact_mut(w_out * c))
    {
        if c == 1 {
            for (x, d) in dst.iter_mut().enumerate() {
                let w = &t.weights[x * t.ksize..][..t.len[x]];
                *d = clip8(dot(&src[t.start[x]..][..w.len()], w));
            }
            continue;
        }
        for (ch, plane) in planes.chunks_exact_mut(img.width).enumerate() {
            for (p, px) in plane.iter_mut().zip(src.chunks_exact(c)) {
                *p = px[ch];
            }
        }
        for (x, px) in dst.chunks_exact_mut(c).enumerate() {
            let w = &t.weights[x * t.ksize..][..t.len[x]];
            for (plane, d) in planes.chunks_exact(img.width).zip(px) {
                *d = clip8(dot(&plane[t.start[x]..][..w.len()], w));
            }
        }
    }
    Image8::new(w_out, img.height, c, out)
}

/// Rows `rows` of the image resized to height `n_out`.
#[inline(always)]
fn resample_vertical(
    img: &Image8,
    n_out: usize,
    rows: Range<usize>,
    interp: Interpolation,
) -> Image8 {
    let t = taps(img.height, n_out, interp, rows.clone());
    let row = img.width * img.channels;
    let mut out = vec![0u8; rows.len() * row];
    let mut acc = vec![0i32; row];
    for (y, dst) in out.chunks_exact_mut(row).enumerate() {
        acc.fill(1 << (PRECISION_BITS - 1));
        let w = &t.weights[y * t.ksize..y * t.ksize + t.len[y]];
        for (j, wj) in w.iter().enumerate() {
            let src = &img.data[(t.start[y] + j) * row..][..row];
            for (a, s) in acc.iter_mut().zip(src) {
                *a += i32::from(*s) * wj;
            }
        }
        for (d, a) in dst.iter_mut().zip(&acc) {
            *d = clip8(*a);
        }
    }
    Image8::new(img.width, rows.len(), img.channels, out)
}

/// `Image.resize((w, h), BICUBIC | BILINEAR)` for L/RGB-like 8-bit data.
pub fn resize(img: &Image8, w: usize, h: usize, interp: Interpolation) -> Image8 {
    resize_window(img, w, h, 0..w, 0..h, interp)
}

/// The window `cols` x `rows` of `Image.resize((w, h))`, computing nothing outside it: every
/// output pixel has its own taps, so this equals resizing then cropping, without the full-size
/// intermediate (a 1 x 100000 strip would otherwise become a 224 x 22.4M image).
pub fn resize_window(
    img: &Image8,
    w: usize,
    h: usize,
    cols: Range<usize>,
    rows: Range<usize>,
    interp: Interpolation,
) -> Image8 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // Safety: the CPU has AVX2.
        return unsafe { resize_window_avx2(img, w, h, cols, rows, interp) };
    }
    resize_window_any(img, w, h, cols, rows, interp)
}

/// The same integer arithmetic compiled for AVX2, whose 8-lane 32-bit multiplies the tap sums
/// vectorise to (SSE2 has none); integer sums in any order are the same sums.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn resize_window_avx2(
    img: &Image8,
    w: usize,
    h: usize,
    cols: Range<usize>,
    rows: Range<usize>,
    interp: Interpolation,
) -> Image8 {
    resize_window_any(img, w, h, cols, rows, interp)
}

#[inline(always)]
fn resize_window_any(
    img: &Image8,
    w: usize,
    h: usize,
    cols: Range<usize>,
    rows: Range<usize>,
    interp: Interpolation,
) -> Image8 {
    // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as
    // many pixels as the width (found against Pillow 13.0.0; the order changes uint8 rounding).
    let vertical_first = h < img.height && (img.height - h) > 2 * img.width.saturating_sub(w);
    // Plain calls, not closures: a closure is compiled without the caller's target features.
    if vertical_first {
        let im = vertical_pass(img, h, rows, interp);
        horizontal_pass(&im, w, cols, interp)
    } else {
        let im = horizontal_pass(img, w, cols, interp);
        vertical_pass(&im, h, rows, interp)
    }
}

#[inline(always)]
fn horizontal_pass(im: &Image8, w: usize, cols: Range<usize>, interp: Interpolation) -> Image8 {
    if im.width != w {
        resample_horizontal(im, w, cols, interp)
    } else {
        crop_cols(im, cols)
    }
}

#[inline(always)]
fn vertical_pass(im: &Image8, h: usize, rows: Range<usize>, interp: Interpolation) -> Image8 {
    if im.height != h {
        resample_vertical(im, h, rows, interp)
    } else {
        crop_rows(im, rows)
    }
}

pub(crate) fn crop_cols(img: &Image8, cols: Range<usize>) -> Image8 {
    if cols == (0..img.width) {
        return img.clone();
    }
    let c = img.channels;
    let data = img
        .data
        .chunks_exact(img.width * c)
        .flat_map(|row| row[cols.start * c..cols.end * c].iter().copied())
        .collect();
    Image8::new(cols.len(), img.height, c, data)
}

pub(crate) fn crop_rows(img: &Image8, rows: Range<usize>) -> Image8 {
    let row = img.width * img.channels;
    Image8::new(
        img.width,
        rows.len(),
        img.channels,
        img.data[rows.start * row..rows.end * row].to_vec(),
    )
}

/// Pillow's NEAREST resize (an affine transform), window `cols` x `rows` of it: source
/// coordinates start at half a step and accumulate one step per pixel in double, then truncate.
pub fn resize_nearest_window(
    img: &Image8,
    w: usize,
    h: usize,
    cols: Range<usize>,
    rows: Range<usize>,
) -> Image8 {
    let index = |n_in: usize, n_out: usize, range: Range<usize>| -> Vec<usize> {
        let step = n_in as f64 / n_out as f64;
        let mut pos = step * 0.5;
        let mut out = Vec::with_capacity(range.len());
        for i in 0..range.end {
            if i >= range.start {
                out.push((pos as usize).min(n_in - 1));
            }
            pos += step;
        }
        out
    };
    let (xs, ys) = (index(img.width, w, cols), index(img.height, h, rows));
    let c = img.channels;
    let mut out = Vec::with_capacity(xs.len() * ys.len() * c);
    for &y in &ys {
        let row = &img.data[y * img.width * c..][..img.width * c];
        for &x in &xs {
            out.extend_from_slice(&row[x * c..x * c + c]);
        }
    }
    Image8::new(xs.len(), ys.len(), c, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The horizontal pass as it was before it was vectorised: one indexed tap at a time,
    /// channels interleaved. An independent reference for the slice/plane code.
    fn reference_horizontal(
        img: &Image8,
        n_out: usize,
        cols: Range<usize>,
        i: Interpolation,
    ) -> Image8 {
        let t = taps(img.width, n_out, i, cols.clone());
        let (c, w_out) = (img.channels, cols.len());
        let mut out = vec![0u8; w_out * img.height * c];
        for (src, dst) in img
            .data
            .chunks_exact(img.width * c)
            .zip(out.chunks_exact_mut(w_out * c))
        {
            for x in 0..w_out {
                let w = &t.weights[x * t.ksize..x * t.ksize + t.len[x]];
                for ch in 0..c {
                    let mut acc: i32 = 1 << (PRECISION_BITS - 1);
                    for (j, wj) in w.iter().enumerate() {
                        acc += i32::from(src[(t.start[x] + j) * c + ch]) * wj;
                    }
                    dst[x * c + ch] = clip8(acc);
                }
            }
        }
        Image8::new(w_out, img.height, c, out)
    }

    /// `resize_window` as it was, on the reference horizontal pass.
    fn reference_window(
        img: &Image8,
        (w, h): (usize, usize),
        cols: Range<usize>,
        rows: Range<usize>,
        i: Interpolation,
    ) -> (Image8, bool) {
        let vertical_first = h < img.height && (img.height - h) > 2 * img.width.saturating_sub(w);
        let horizontal = |im: &Image8| match im.width != w {
            true => reference_horizontal(im, w, cols.clone(), i),
            false => crop_cols(im, cols.clone()),
        };
        let vertical = |im: &Image8| match im.height != h {
            true => resample_vertical(im, h, rows.clone(), i),
            false => crop_rows(im, rows.clone()),
        };
        let out = match vertical_first {
            true => horizontal(&vertical(img)),
            false => vertical(&horizontal(img)),
        };
        (out, vertical_first)
    }

    #[test]
    fn both_builds_resize_to_the_bytes_of_the_indexed_loop() {
        // Pillow parity itself is tested on the files in tests/it; this holds the vectorised
        // passes (the AVX2 build where the CPU has it, and the baseline build) to the loop they
        // replaced, on every channel count, up and down, both filters, crops and both orders.
        let mut rng = crate::eval::metrics::Rng::new(0x2545_f491_4f6c_dd1d);
        let mut byte = move || (rng.next_u64() >> 32) as u8;
        let cases = [
            (1024, 1024, 224, 224, 0..224, 0..224),
            (1477, 1203, 276, 224, 26..250, 0..224),
            (300, 1000, 224, 746, 0..224, 261..485), // tall: the vertical pass first
            (300, 40, 224, 30, 0..224, 3..27),
            (57, 61, 224, 240, 0..224, 8..232),
            (999, 7, 32, 3, 5..29, 0..3),
        ];
        let mut orders = [false; 2];
        for c in 1..=4 {
            for (iw, ih, w, h, cols, rows) in cases.clone() {
                let img = Image8::new(iw, ih, c, (0..iw * ih * c).map(|_| byte()).collect());
                for interp in [Interpolation::Bicubic, Interpolation::Bilinear] {
                    let (want, vfirst) =
                        reference_window(&img, (w, h), cols.clone(), rows.clone(), interp);
                    orders[usize::from(vfirst)] = true;
                    let fast = resize_window(&img, w, h, cols.clone(), rows.clone(), interp);
                    let base = resize_window_any(&img, w, h, cols.clone(), rows.clone(), interp);
                    assert_eq!((fast.width, fast.height), (cols.len(), rows.len()));
                    let at = format!("{iw}x{ih}x{c} -> {w}x{h} {interp:?}");
                    assert!(fast.data == want.data, "{at}: the dispatched build differs");
                    assert!(base.data == want.data, "{at}: the baseline build differs");
                }
            }
        }
        assert_eq!(orders, [true, true], "both pass orders covered");
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (n_in, n_out) in [(1024, 224), (224, 224), (100, 224), (1477, 276), (7, 3)] {
            let t = taps(n_in, n_out, Interpolation::Bicubic, 0..n_out);
            for i in 0..n_out {
                let s: i32 = t.weights[i * t.ksize..][..t.len[i]].iter().sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= t.len[i] as i32,
                    "{n_in}->{n_out} at {i}: {s}"
                );
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = Image8::new(37, 53, 3, vec![200; 37 * 53 * 3]);
        for interp in [Interpolation::Bicubic, Interpolation::Bilinear] {
            let out = resize(&img, 224, 224, interp);
            assert!(out.data.iter().all(|&v| v == 200), "{interp:?}");
        }
    }

    #[test]
    fn a_window_equals_the_crop_of_the_full_resize() {
        let data: Vec<u8> = (0..37 * 53 * 3).map(|i| (i * 7 % 251) as u8).collect();
        let img = Image8::new(37, 53, 3, data);
        for (w, h) in [(224, 320), (20, 90), (224, 224)] {
            let full = resize(&img, w, h, Interpolation::Bicubic);
            let win = resize_window(&img, w, h, 3..w - 5, 7..h - 2, Interpolation::Bicubic);
            assert_eq!(
                win,
                crop_rows(&crop_cols(&full, 3..w - 5), 7..h - 2),
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn nearest_picks_pillow_source_pixels() {
        let img = Image8::new(5, 1, 1, vec![0, 1, 2, 3, 4]);
        assert_eq!(
            resize_nearest_window(&img, 2, 1, 0..2, 0..1).data,
            vec![1, 3]
        );
        assert_eq!(
            resize_nearest_window(&img, 10, 1, 0..10, 0..1).data,
            vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
        );
    }
}
