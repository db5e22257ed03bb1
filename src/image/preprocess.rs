//! Preprocess: decoded 8-bit pixels -> the normalised [3, S, S] float tensor open_clip's
//! inference transform makes (Resize + CenterCrop or squash, convert("RGB"), ToTensor, Normalize).

use super::decode::Decoded;
use super::resample::{crop_cols, crop_rows, resize_nearest_window, resize_window, Image8};
use crate::model::config::{PreprocessConfig, ResizeMode};

/// open_clip order: resize, crop, then RGB. Returns 1 (L) or 3 (RGB) channels, `size` square.
/// Only the pixels inside the crop are resampled.
pub fn resize_and_crop(d: &Decoded, cfg: &PreprocessConfig) -> Image8 {
    let s = cfg.size;
    let img = &d.image;
    let (w, h) = match cfg.resize_mode {
        ResizeMode::Squash => (s, s),
        ResizeMode::Shortest => shortest_side_size(img.width, img.height, s),
    };
    if (w, h) == (img.width, img.height) {
        let img = drop_alpha(img);
        return match cfg.resize_mode {
            ResizeMode::Squash => img,
            ResizeMode::Shortest => center_crop(&img, s),
        };
    }
    // Shortest mode: both sides are now >= s, so the crop is a plain window.
    let (left, top) = match cfg.resize_mode {
        ResizeMode::Squash => (0, 0),
        ResizeMode::Shortest => (crop_offset(w, s), crop_offset(h, s)),
    };
    let (cols, rows) = (left..left + s, top..top + s);
    if d.palette {
        drop_alpha(&resize_nearest_window(img, w, h, cols, rows))
    } else if img.channels.is_multiple_of(2) {
        // Pillow resizes LA/RGBA premultiplied (La/RGBa) and converts back before dropping alpha.
        let resized = resize_window(&premultiply(img), w, h, cols, rows, cfg.interpolation);
        drop_alpha(&unpremultiply(&resized))
    } else {
        resize_window(img, w, h, cols, rows, cfg.interpolation)
    }
}

/// torchvision `CenterCrop` offset: `int(round((n - s) / 2))`, round-half-to-even.
pub(crate) fn crop_offset(n: usize, s: usize) -> usize {
    ((n as f64 - s as f64) / 2.0).round_ties_even().max(0.0) as usize
}

/// torchvision `Resize(int)`: short side to `s`, long side `int(s * long / short)` (truncated).
pub(crate) fn shortest_side_size(w: usize, h: usize, s: usize) -> (usize, usize) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long = (s as f64 * long as f64 / short as f64) as usize;
    if w <= h {
        (s, new_long)
    } else {
        (new_long, s)
    }
}

/// torchvision `CenterCrop` of an image already at least `s` on both sides (shortest mode
/// guarantees it; torchvision's zero padding for smaller images never arises).
fn center_crop(img: &Image8, s: usize) -> Image8 {
    let (left, top) = (crop_offset(img.width, s), crop_offset(img.height, s));
    crop_rows(&crop_cols(img, left..left + s), top..top + s)
}

/// Pillow `MULDIV255(v, alpha)`: RGBA -> RGBa.
fn premultiply(img: &Image8) -> Image8 {
    let mut out = img.data.clone();
    for px in out.chunks_exact_mut(img.channels) {
        let (color, alpha) = px.split_at_mut(img.channels - 1);
        let a = u32::from(alpha[0]);
        for v in color {
            let t = u32::from(*v) * a + 128;
            *v = (((t >> 8) + t) >> 8) as u8;
        }
    }
    Image8::new(img.width, img.height, img.channels, out)
}

/// Pillow RGBa -> RGBA: `CLIP8(255 * v / alpha)`, untouched where alpha is 0 or 255.
fn unpremultiply(img: &Image8) -> Image8 {
    let mut out = img.data.clone();
    for px in out.chunks_exact_mut(img.channels) {
        let (color, alpha) = px.split_at_mut(img.channels - 1);
        let a = u32::from(alpha[0]);
        if a != 0 && a != 255 {
            for v in color {
                *v = (255 * u32::from(*v) / a).min(255) as u8;
            }
        }
    }
    Image8::new(img.width, img.height, img.channels, out)
}

/// `convert("RGB")` drops alpha without compositing.
fn drop_alpha(img: &Image8) -> Image8 {
    if img.channels % 2 == 1 {
        return img.clone();
    }
    let keep = img.channels - 1;
    let data = img
        .data
        .chunks_exact(img.channels)
        .flat_map(|px| px[..keep].iter().copied())
        .collect();
    Image8::new(img.width, img.height, keep, data)
}

/// ToTensor + Normalize in float32, in torchvision's order: `(v / 255 - mean) / std`.
/// A grey image is replicated to three channels here, after resizing (the same result as
/// converting first, with a third of the resize work).
pub fn normalise(img: &Image8, cfg: &PreprocessConfig, out: &mut [f32]) {
    let plane = img.width * img.height;
    assert_eq!(out.len(), 3 * plane, "output buffer size");
    for ch in 0..3 {
        let src = if img.channels == 1 { 0 } else { ch };
        let (mean, std) = (cfg.mean[ch], cfg.std[ch]);
        // 256 possible inputs: a table keeps the exact float32 arithmetic and costs nothing.
        let lut: Vec<f32> = (0..=255u8)
            .map(|v| (f32::from(v) / 255.0 - mean) / std)
            .collect();
        let pixels = img.data.chunks_exact(img.channels);
        for (o, px) in out[ch * plane..][..plane].iter_mut().zip(pixels) {
            *o = lut[usize::from(px[src])];
        }
    }
}

/// The whole transform into `out` ([3, size, size], CHW), e.g. one image's slot of a batch.
pub fn preprocess_into(d: &Decoded, cfg: &PreprocessConfig, out: &mut [f32]) {
    normalise(&resize_and_crop(d, cfg), cfg, out);
}

/// The whole transform: [3, size, size] in CHW order.
pub fn preprocess(d: &Decoded, cfg: &PreprocessConfig) -> Vec<f32> {
    let mut out = vec![0f32; 3 * cfg.size * cfg.size];
    preprocess_into(d, cfg, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_side_truncates_long_side() {
        assert_eq!(shortest_side_size(1477, 1198, 224), (276, 224));
        assert_eq!(shortest_side_size(512, 1024, 224), (224, 448));
        assert_eq!(shortest_side_size(100, 80, 224), (280, 224));
    }

    #[test]
    fn center_crop_rounds_half_to_even() {
        // 261 - 224 = 37 -> 18.5 -> 18; 263 - 224 = 39 -> 19.5 -> 20.
        let row = |w: usize| {
            Image8::new(
                w,
                224,
                1,
                (0..224).flat_map(|_| (0..w).map(|x| x as u8)).collect(),
            )
        };
        assert_eq!(center_crop(&row(261), 224).data[0], 18);
        assert_eq!(center_crop(&row(263), 224).data[0], 20);
    }

    #[test]
    fn premultiply_round_trip_matches_pillow_formulas() {
        let img = Image8::new(1, 1, 4, vec![200, 100, 0, 128]);
        let p = premultiply(&img);
        assert_eq!(p.data, vec![100, 50, 0, 128]);
        assert_eq!(unpremultiply(&p).data, vec![199, 99, 0, 128]);
    }
}
