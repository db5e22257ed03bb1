//! Explain (render): raw grid maps -> pictures on the original image: each label's map
//! normalised to its own range, upsampled bilinearly through the crop's geometry, coloured and
//! blended over the image as decoded (windowed, for DICOM and 16-bit files); what the crop cut
//! off is dimmed and hatched, as not looked at. And a strip per image: the original beside each
//! label's overlay, captioned with the label and its score.

use super::colormap_tables::{INFERNO, JET, VIRIDIS};
use super::geometry::Placement;
use crate::image::Image8;
use anyhow::{Context, Result};
use font8x8::UnicodeFonts;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Colormap {
    Jet,
    Viridis,
    Inferno,
}

impl Colormap {
    fn rgb(self, v: f32) -> [u8; 3] {
        let i = (v.clamp(0.0, 1.0) * 255.0 + 0.5) as usize;
        match self {
            Colormap::Jet => JET[i],
            Colormap::Viridis => VIRIDIS[i],
            Colormap::Inferno => INFERNO[i],
        }
    }
}

/// An 8-bit RGB picture.
#[derive(Debug, Clone)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Rgb {
    /// The decoded image as RGB (grey repeated, alpha dropped).
    pub fn of(img: &Image8) -> Self {
        let data = img
            .data
            .chunks_exact(img.channels)
            .flat_map(|px| match img.channels {
                1 | 2 => [px[0]; 3],
                _ => [px[0], px[1], px[2]],
            })
            .collect();
        Self {
            width: img.width,
            height: img.height,
            data,
        }
    }

    /// As PNG with fast compression: a folder of overlays is written at the model's pace,
    /// not the encoder's (best compression took a quarter of a second per megapixel).
    pub fn save(&self, path: &Path) -> Result<()> {
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        use image::ImageEncoder;
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        PngEncoder::new_with_quality(
            std::io::BufWriter::new(file),
            CompressionType::Fast,
            FilterType::Sub,
        )
        .write_image(
            &self.data,
            self.width as u32,
            self.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Resized to `height` (aspect kept), for the strip.
    fn scaled(&self, height: usize) -> Rgb {
        let width = ((self.width * height) as f64 / self.height as f64)
            .round()
            .max(1.0) as usize;
        let buf =
            image::RgbImage::from_raw(self.width as u32, self.height as u32, self.data.clone())
                .expect("buffer of its size");
        let out = image::imageops::resize(
            &buf,
            width as u32,
            height as u32,
            image::imageops::FilterType::Triangle,
        );
        Rgb {
            width,
            height,
            data: out.into_raw(),
        }
    }
}

/// The range a map is normalised by, and the overlay.
pub struct Overlay {
    pub picture: Rgb,
    /// The raw map's smallest and largest value.
    pub range: (f32, f32),
}

/// `map` [grid * grid] over `img` at `alpha`, normalised to its own range. Bilinear
/// upsampling is separable: each column's and each row's place on the grid is computed once.
pub fn overlay(img: &Rgb, map: &[f32], at: &Placement, cmap: Colormap, alpha: f32) -> Overlay {
    let grid = at.grid();
    let (lo, hi) = map
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let norm: Vec<f32> = map.iter().map(|v| (v - lo) / span).collect();
    // (first cell, second cell, weight of the second), or None where not looked at.
    let weights = |g: Option<f64>| -> Option<(usize, usize, f32)> {
        let g = g?.clamp(0.0, (grid - 1) as f64);
        let a = g.floor() as usize;
        Some((a, (a + 1).min(grid - 1), (g - a as f64) as f32))
    };
    let cols: Vec<_> = (0..img.width).map(|x| weights(at.col(x))).collect();
    let rows: Vec<_> = (0..img.height).map(|y| weights(at.row(y))).collect();
    let mut data = img.data.clone();
    let mut line = vec![0f32; grid];
    for (y, row) in rows.iter().enumerate() {
        let out = &mut data[y * img.width * 3..(y + 1) * img.width * 3];
        if let Some((r0, r1, fr)) = row {
            for (c, v) in line.iter_mut().enumerate() {
                *v = norm[r0 * grid + c] * (1.0 - fr) + norm[r1 * grid + c] * fr;
            }
        }
        for (x, px) in out.chunks_exact_mut(3).enumerate() {
            match (row, cols[x]) {
                (Some(_), Some((c0, c1, fc))) => {
                    let v = line[c0] * (1.0 - fc) + line[c1] * fc;
                    let c = cmap.rgb(v);
                    for (p, c) in px.iter_mut().zip(c) {
                        *p = (f32::from(*p) * (1.0 - alpha) + f32::from(c) * alpha + 0.5) as u8;
                    }
                }
                // Not looked at: dimmed, with a diagonal hatch every 12 pixels.
                _ => {
                    let hatch = (x + y) % 12 < 2;
                    px.iter_mut().for_each(|p| {
                        *p = if hatch {
                            96
                        } else {
                            (u16::from(*p) * 2 / 7) as u8
                        }
                    });
                }
            }
        }
    }
    Overlay {
        picture: Rgb {
            width: img.width,
            height: img.height,
            data,
        },
        range: (lo, hi),
    }
}

const PANEL: usize = 320;
const CAPTION: usize = 44;
const FOOTER: usize = 12;

/// The original beside each overlay, `PANEL` pixels high, each captioned (two lines).
pub fn strip(original: &Rgb, panels: &[(Rgb, String, String)]) -> Rgb {
    let scaled: Vec<(Rgb, &str, &str)> = std::iter::once((original.scaled(PANEL), "original", ""))
        .chain(
            panels
                .iter()
                .map(|(p, a, b)| (p.scaled(PANEL), a.as_str(), b.as_str())),
        )
        .collect();
    let gap = 6;
    let width = scaled.iter().map(|(p, _, _)| p.width + gap).sum::<usize>() + gap;
    let height = PANEL + CAPTION + FOOTER + 2 * gap;
    let mut out = Rgb {
        width,
        height,
        data: vec![255; width * height * 3],
    };
    let mut x0 = gap;
    for (p, line1, line2) in &scaled {
        for y in 0..p.height {
            let src = &p.data[y * p.width * 3..(y + 1) * p.width * 3];
            let at = ((gap + y) * width + x0) * 3;
            out.data[at..at + src.len()].copy_from_slice(src);
        }
        text(&mut out, x0, gap + PANEL + 6, line1, p.width, 2);
        text(&mut out, x0, gap + PANEL + 6 + 18, line2, p.width, 2);
        x0 += p.width + gap;
    }
    // The picture travels without the page around it: it says what it is itself.
    let long = "model explanation, not localisation of disease; each map scaled to its own range; research use only";
    let short = "model explanation, not localisation of disease";
    let note = if long.len() * 8 <= width - 2 * gap {
        long
    } else {
        short
    };
    text(&mut out, gap, height - gap - 9, note, width - 2 * gap, 1);
    out
}

/// Black 8x8 glyphs drawn at `scale` times their size, cut at `max_width` pixels; characters
/// the font lacks are drawn as `?`.
fn text(img: &mut Rgb, x0: usize, y0: usize, s: &str, max_width: usize, scale: usize) {
    let fonts = (font8x8::BASIC_FONTS, font8x8::LATIN_FONTS);
    let step = 8 * scale;
    for (i, ch) in s.chars().take(max_width / step).enumerate() {
        let glyph = fonts
            .0
            .get(ch)
            .or_else(|| fonts.1.get(ch))
            .or_else(|| fonts.0.get('?'))
            .unwrap_or([0; 8]);
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if bits >> gx & 1 == 1 {
                    for (dy, dx) in (0..scale).flat_map(|a| (0..scale).map(move |b| (a, b))) {
                        let (x, y) = (x0 + i * step + gx * scale + dx, y0 + gy * scale + dy);
                        if x < img.width && y < img.height {
                            img.data[(y * img.width + x) * 3..][..3].fill(0);
                        }
                    }
                }
            }
        }
    }
}
