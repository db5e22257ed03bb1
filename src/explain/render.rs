//! Explain (render): raw grid maps -> pictures on the original image: each label's map
//! normalised to its own range, upsampled bilinearly through the crop's geometry, coloured and
//! blended over the image as decoded (windowed, for DICOM and 16-bit files); what the crop cut
//! off is dimmed and hatched, as not looked at. And a strip per image: the original beside each
//! label's overlay, captioned with the label and its score.

use super::colormap_tables::{INFERNO, JET, VIRIDIS};
use super::geometry::{sample, Placement};
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
        let i = (v.clamp(0.0, 1.0) * 255.0).round() as usize;
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

    pub fn save(&self, path: &Path) -> Result<()> {
        image::save_buffer(
            path,
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

/// `map` [grid * grid] over `img` at `alpha`, normalised to its own range.
pub fn overlay(img: &Rgb, map: &[f32], at: &Placement, cmap: Colormap, alpha: f32) -> Overlay {
    let grid = at.grid();
    let (lo, hi) = map
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut data = img.data.clone();
    for y in 0..img.height {
        for x in 0..img.width {
            let px = &mut data[(y * img.width + x) * 3..][..3];
            match at.to_grid(x, y) {
                Some(g) => {
                    let c = cmap.rgb((sample(map, grid, g) - lo) / span);
                    for (p, c) in px.iter_mut().zip(c) {
                        *p = (f32::from(*p) * (1.0 - alpha) + f32::from(c) * alpha).round() as u8;
                    }
                }
                // Not looked at: dimmed, with a diagonal hatch every 12 pixels.
                None => {
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

/// The original beside each overlay, `PANEL` pixels high, each captioned (two lines).
pub fn strip(original: &Rgb, panels: &[(&Rgb, String, String)]) -> Rgb {
    let scaled: Vec<(Rgb, &str, &str)> = std::iter::once((original.scaled(PANEL), "original", ""))
        .chain(
            panels
                .iter()
                .map(|(p, a, b)| (p.scaled(PANEL), a.as_str(), b.as_str())),
        )
        .collect();
    let gap = 6;
    let width = scaled.iter().map(|(p, _, _)| p.width + gap).sum::<usize>() + gap;
    let height = PANEL + CAPTION + 2 * gap;
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
        text(&mut out, x0, gap + PANEL + 6, line1, p.width);
        text(&mut out, x0, gap + PANEL + 6 + 18, line2, p.width);
        x0 += p.width + gap;
    }
    out
}

/// Black 8x8 glyphs drawn at twice their size, cut at `max_width` pixels; characters the font
/// lacks are drawn as `?`.
fn text(img: &mut Rgb, x0: usize, y0: usize, s: &str, max_width: usize) {
    let fonts = (font8x8::BASIC_FONTS, font8x8::LATIN_FONTS);
    for (i, ch) in s.chars().take(max_width / 16).enumerate() {
        let glyph = fonts
            .0
            .get(ch)
            .or_else(|| fonts.1.get(ch))
            .or_else(|| fonts.0.get('?'))
            .unwrap_or([0; 8]);
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if bits >> gx & 1 == 1 {
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let (x, y) = (x0 + i * 16 + gx * 2 + dx, y0 + gy * 2 + dy);
                        if x < img.width && y < img.height {
                            img.data[(y * img.width + x) * 3..][..3].fill(0);
                        }
                    }
                }
            }
        }
    }
}
