//! Explain (geometry): the patch grid placed back on the original image (as decoded, EXIF
//! orientation applied), through the preprocessing's resize and centre crop (or `squash`):
//! a cell's box in original pixels, and each original pixel's place on the grid.

use crate::model::config::{PreprocessConfig, ResizeMode};

/// Where the model's input came from in the original image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// The resized image's size, and the crop's top-left corner in it.
    resized: (usize, usize),
    crop: (usize, usize),
    /// Original pixels per resized pixel, per axis.
    scale: (f64, f64),
    patch: usize,
    grid: usize,
}

impl Placement {
    /// As `image::preprocess::resize_and_crop` places it (Pillow's sizes and crop offsets).
    pub fn new(
        width: usize,
        height: usize,
        cfg: &PreprocessConfig,
        patch: usize,
        grid: usize,
    ) -> Self {
        let s = cfg.size;
        let resized = match cfg.resize_mode {
            ResizeMode::Squash => (s, s),
            ResizeMode::Shortest => crate::image::preprocess::shortest_side_size(width, height, s),
        };
        let crop = match cfg.resize_mode {
            ResizeMode::Squash => (0, 0),
            ResizeMode::Shortest => (
                crate::image::preprocess::crop_offset(resized.0, s),
                crate::image::preprocess::crop_offset(resized.1, s),
            ),
        };
        Self {
            resized,
            crop,
            scale: (
                width as f64 / resized.0 as f64,
                height as f64 / resized.1 as f64,
            ),
            patch,
            grid,
        }
    }

    /// Grid cell (row, col) as (x0, y0, x1, y1) in original pixels (pixel edges).
    pub fn cell_box(&self, row: usize, col: usize) -> (f64, f64, f64, f64) {
        let p = self.patch as f64;
        let x0 = (self.crop.0 as f64 + col as f64 * p) * self.scale.0;
        let y0 = (self.crop.1 as f64 + row as f64 * p) * self.scale.1;
        (x0, y0, x0 + p * self.scale.0, y0 + p * self.scale.1)
    }

    /// The centre of a cell in original pixels.
    pub fn cell_centre(&self, row: usize, col: usize) -> (f64, f64) {
        let (x0, y0, x1, y1) = self.cell_box(row, col);
        ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    }

    /// The original pixel (x, y)'s centre in grid coordinates (cell centres at integers), or
    /// `None` where the model did not look (cropped off, or past the last whole patch).
    pub fn to_grid(&self, x: usize, y: usize) -> Option<(f64, f64)> {
        let u = (x as f64 + 0.5) / self.scale.0 - self.crop.0 as f64;
        let v = (y as f64 + 0.5) / self.scale.1 - self.crop.1 as f64;
        let span = (self.grid * self.patch) as f64;
        if u < 0.0 || v < 0.0 || u >= span || v >= span {
            return None;
        }
        let p = self.patch as f64;
        Some((v / p - 0.5, u / p - 0.5))
    }

    /// Column `x`'s centre on the grid's column axis, or `None` outside what was looked at.
    pub fn col(&self, x: usize) -> Option<f64> {
        let u = (x as f64 + 0.5) / self.scale.0 - self.crop.0 as f64;
        let span = (self.grid * self.patch) as f64;
        (0.0..span)
            .contains(&u)
            .then(|| u / self.patch as f64 - 0.5)
    }

    /// Row `y`'s centre on the grid's row axis, or `None` outside what was looked at.
    pub fn row(&self, y: usize) -> Option<f64> {
        let v = (y as f64 + 0.5) / self.scale.1 - self.crop.1 as f64;
        let span = (self.grid * self.patch) as f64;
        (0.0..span)
            .contains(&v)
            .then(|| v / self.patch as f64 - 0.5)
    }

    pub fn grid(&self) -> usize {
        self.grid
    }
}

/// Bilinear sample of a [grid, grid] map at grid coordinates, clamped at the edges.
pub fn sample(map: &[f32], grid: usize, (r, c): (f64, f64)) -> f32 {
    let clamp = |v: f64| v.clamp(0.0, (grid - 1) as f64);
    let (r, c) = (clamp(r), clamp(c));
    let (r0, c0) = (r.floor() as usize, c.floor() as usize);
    let (r1, c1) = ((r0 + 1).min(grid - 1), (c0 + 1).min(grid - 1));
    let (fr, fc) = ((r - r0 as f64) as f32, (c - c0 as f64) as f32);
    let at = |a: usize, b: usize| map[a * grid + b];
    let top = at(r0, c0) * (1.0 - fc) + at(r0, c1) * fc;
    let bottom = at(r1, c0) * (1.0 - fc) + at(r1, c1) * fc;
    top * (1.0 - fr) + bottom * fr
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{Interpolation, PreprocessConfig};

    fn cfg(mode: ResizeMode) -> PreprocessConfig {
        PreprocessConfig {
            size: 224,
            mean: [0.5; 3],
            std: [0.5; 3],
            interpolation: Interpolation::Bicubic,
            resize_mode: mode,
        }
    }

    #[test]
    fn known_crops() {
        // 1000 x 500: resized to 448 x 224, crop from x = 112; a cell is 14 resized pixels.
        let p = Placement::new(1000, 500, &cfg(ResizeMode::Shortest), 14, 16);
        let (x0, y0, x1, y1) = p.cell_box(0, 0);
        assert!((x0 - 112.0 * 1000.0 / 448.0).abs() < 1e-9 && y0 == 0.0);
        assert!(
            (x1 - x0 - 14.0 * 1000.0 / 448.0).abs() < 1e-9
                && (y1 - 14.0 * 500.0 / 224.0).abs() < 1e-9
        );
        assert_eq!(p.to_grid(0, 0), None, "left of the crop");
        let (cx, cy) = p.cell_centre(3, 5);
        let (r, c) = p.to_grid(cx as usize, cy as usize).unwrap();
        assert!((r - 3.0).abs() < 0.1 && (c - 5.0).abs() < 0.1);
        // squash: the whole image, each axis scaled on its own.
        let q = Placement::new(300, 600, &cfg(ResizeMode::Squash), 30, 7);
        assert!((q.cell_box(6, 6).0 - 6.0 * 30.0 * 300.0 / 224.0).abs() < 1e-9);
        assert_eq!(
            q.to_grid(299, 599),
            None,
            "7 x 30 = 210 < 224: the last pixels are past the grid"
        );
        assert!(q.to_grid(0, 0).is_some());
    }

    #[test]
    fn bilinear_sampling_hits_cell_centres_and_clamps() {
        let map = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(sample(&map, 2, (0.0, 1.0)), 1.0);
        assert_eq!(sample(&map, 2, (0.5, 0.5)), 1.5);
        assert_eq!(sample(&map, 2, (-3.0, 9.0)), 1.0);
    }
}
