//! Decode: an image file's bytes -> 8-bit pixels as Pillow would hand them to the resize, plus
//! a report of what the decoder found and did (EXIF orientation, bit depth, window). PNG and
//! TIFF through the `image` crate and JPEG through libjpeg-turbo's decoder (MozJPEG), all
//! bit-identical to Pillow's 8-bit pixels; DICOM in `dicom.rs`.

use super::report::{DecodeOptions, Report};
use super::resample::Image8;
use super::window::{to_u8, Window};
use anyhow::{bail, Context, Result};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::Cursor;
use std::path::Path;

/// File extensions searched for in directories (case-insensitive).
pub const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "tif", "tiff", "dcm", "dicom"];

#[derive(Debug, Clone)]
pub struct Decoded {
    /// 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA) channels.
    pub image: Image8,
    /// A palette PNG: Pillow resizes those with NEAREST whatever filter is asked for.
    pub palette: bool,
    /// What was found and done.
    pub report: Report,
}

/// The image format whyxray would decode `head` (a file's first bytes, 132 for DICOM's
/// preamble) as, from its signature alone: to refuse overwriting an image with an output.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    if super::dicom::is_dicom(head) {
        return Some("DICOM");
    }
    match image::guess_format(head).ok()? {
        ImageFormat::Png => Some("PNG"),
        ImageFormat::Jpeg => Some("JPEG"),
        ImageFormat::Tiff => Some("TIFF"),
        _ => None,
    }
}

pub fn decode_file(path: &Path) -> Result<Decoded> {
    decode_file_with(path, &DecodeOptions::default())
}

pub fn decode_file_with(path: &Path, opts: &DecodeOptions) -> Result<Decoded> {
    let bytes = std::fs::read(path).context("cannot read file")?;
    decode_bytes_with(&bytes, opts)
}

pub fn decode_bytes(bytes: &[u8]) -> Result<Decoded> {
    decode_bytes_with(bytes, &DecodeOptions::default())
}

/// `opts.window` decides how samples of more than 8 bits become 8 (see `window::Window`);
/// 8-bit images are left as they are unless it is `minmax`, `percentile` or `cw`.
pub fn decode_bytes_with(bytes: &[u8], opts: &DecodeOptions) -> Result<Decoded> {
    if bytes.is_empty() {
        bail!("empty file");
    }
    if super::dicom::is_dicom(bytes) {
        return super::dicom::decode(bytes, opts);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .context("cannot read image header")?;
    let format = match reader.format() {
        Some(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Tiff)) => f,
        Some(f) => bail!("unsupported image format {f:?} (PNG, JPEG, TIFF or DICOM)"),
        None => bail!("not a PNG, JPEG, TIFF or DICOM image"),
    };
    if opts.frame.is_some_and(|f| f > 0) {
        bail!("--frame asks for a frame this single-frame image does not have");
    }
    let mut decoder = reader.into_decoder().context("cannot decode image")?;
    let (w, h) = decoder.dimensions();
    check_size(u64::from(w), u64::from(h), opts.max_pixels)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = match format {
        ImageFormat::Jpeg => super::jpeg::decode(bytes)?,
        _ => DynamicImage::from_decoder(decoder).context("cannot decode image")?,
    };
    // open_clip (Pillow's Image.open) ignores EXIF orientation; a photographed film or a
    // phone-exported JPEG is only upright if we apply it.
    img.apply_orientation(orientation);
    let (color_type, depth) = if format == ImageFormat::Png {
        png_header(bytes)
    } else {
        (None, None)
    };
    // Pillow resizes palette (P) and 1-bit (mode "1") images with NEAREST whatever is asked.
    let palette = color_type == Some(3) || (color_type == Some(0) && depth == Some(1));
    // A grey or RGB PNG with a tRNS colour key stays L/RGB in Pillow (the key only goes to
    // `info`); the png crate expands it to an alpha channel, which must not be premultiplied.
    if matches!(color_type, Some(0 | 2)) && img.color().has_alpha() {
        img = match img {
            DynamicImage::ImageLumaA8(_) => DynamicImage::ImageLuma8(img.into_luma8()),
            DynamicImage::ImageLumaA16(_) => DynamicImage::ImageLuma16(img.into_luma16()),
            DynamicImage::ImageRgba16(_) => DynamicImage::ImageRgb16(img.into_rgb16()),
            _ => DynamicImage::ImageRgb8(img.into_rgb8()),
        };
    }
    let mut decoded = to_image8(img, palette, opts.window)?;
    decoded.report.format = match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        _ => "TIFF",
    };
    decoded.report.orientation =
        (orientation != Orientation::NoTransforms).then(|| format!("{orientation:?}"));
    Ok(decoded)
}

/// Refuses a declared size over the budget, before anything is allocated for it.
pub fn check_size(w: u64, h: u64, max_pixels: u64) -> Result<()> {
    if w == 0 || h == 0 {
        bail!("image is {w} x {h} pixels: nothing to score");
    }
    if w.saturating_mul(h) > max_pixels {
        bail!(
            "image is {w} x {h} pixels, over the {}-megapixel limit (--max-megapixels)",
            max_pixels as f64 / 1e6
        );
    }
    Ok(())
}

fn to_image8(img: DynamicImage, palette: bool, window: Window) -> Result<Decoded> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let as_is = matches!(window, Window::Auto | Window::Dicom | Window::None);
    let eight_bit = matches!(
        img,
        DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageRgb8(_)
            | DynamicImage::ImageRgba8(_)
    );
    if eight_bit && as_is {
        // 8-bit data as it is (open_clip's pixels), kept in its own buffer.
        let channels = usize::from(img.color().channel_count());
        let data = img.into_bytes();
        let mut report = report8(palette, channels, false, "none (8-bit data)", w, h);
        report.set_ranges_8bit(&data);
        return Ok(Decoded {
            image: Image8::new(w, h, channels, data),
            palette,
            report,
        });
    }
    let (channels, samples, windowed): (usize, Vec<f64>, bool) = match img {
        DynamicImage::ImageLuma8(b) => (1, widen(&b.into_raw()), false),
        DynamicImage::ImageLumaA8(b) => (2, widen(&b.into_raw()), false),
        DynamicImage::ImageRgb8(b) => (3, widen(&b.into_raw()), false),
        DynamicImage::ImageRgba8(b) => (4, widen(&b.into_raw()), false),
        DynamicImage::ImageLuma16(b) => (1, widen(&b.into_raw()), true),
        DynamicImage::ImageLumaA16(b) => (2, widen(&b.into_raw()), true),
        DynamicImage::ImageRgb16(b) => (3, widen(&b.into_raw()), true),
        DynamicImage::ImageRgba16(b) => (4, widen(&b.into_raw()), true),
        other => bail!("unsupported pixel format {:?}", other.color()),
    };
    let (data, how) = window_colour(&samples, channels, window, !windowed)?;
    let mut report = report8(palette, channels, windowed, &how, w, h);
    report.set_ranges(&samples, &data);
    Ok(Decoded {
        image: Image8::new(w, h, channels, data),
        palette,
        report,
    })
}

/// The report of a PNG/JPEG/TIFF turned into 8 bits (`windowed`: from 16-bit samples).
fn report8(
    palette: bool,
    channels: usize,
    windowed: bool,
    how: &str,
    w: usize,
    h: usize,
) -> Report {
    Report {
        photometric: match (palette, channels) {
            (true, _) => "P (palette or 1-bit)",
            (_, 1) => "L",
            (_, 2) => "LA",
            (_, 3) => "RGB",
            _ => "RGBA",
        }
        .to_string(),
        bits_stored: if windowed { 16 } else { 8 },
        window: how.to_string(),
        frames: 1,
        width: w,
        height: h,
        channels,
        ..Report::default()
    }
}

fn widen<T: Copy + Into<f64>>(v: &[T]) -> Vec<f64> {
    v.iter().map(|&x| x.into()).collect()
}

/// Windows the colour samples together (one mapping for all channels, so hues keep their
/// balance); an alpha channel is only rescaled to 8 bits.
fn window_colour(
    samples: &[f64],
    channels: usize,
    window: Window,
    eight_bit: bool,
) -> Result<(Vec<u8>, String)> {
    let has_alpha = channels.is_multiple_of(2);
    let colour: Vec<f64> = samples
        .chunks_exact(channels)
        .flat_map(|px| px[..channels - usize::from(has_alpha)].iter().copied())
        .collect();
    let (mapped, how) = to_u8(&colour, window, None, eight_bit)?;
    if !has_alpha {
        return Ok((mapped, how));
    }
    let scale = if eight_bit { 1.0 } else { 255.0 / 65535.0 };
    let n = channels - 1;
    let data = mapped
        .chunks_exact(n)
        .zip(samples.chunks_exact(channels))
        .flat_map(|(c, px)| c.iter().copied().chain([(px[n] * scale).round() as u8]))
        .collect();
    Ok((data, how))
}

/// PNG chunks as (type, data), up to the first IDAT; `None` on anything malformed.
fn png_chunks(bytes: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut pos = 8;
    std::iter::from_fn(move || {
        let len = u32::from_be_bytes(bytes.get(pos..pos + 4)?.try_into().ok()?) as usize;
        let kind = bytes.get(pos + 4..pos + 8)?;
        let data = bytes.get(pos + 8..pos.checked_add(8 + len)?)?;
        pos += 12 + len;
        (kind != b"IDAT").then_some((kind, data))
    })
}

/// (colour type, bit depth) from the IHDR chunk.
fn png_header(bytes: &[u8]) -> (Option<u8>, Option<u8>) {
    match png_chunks(bytes).find(|(k, _)| *k == b"IHDR") {
        Some((_, d)) => (d.get(9).copied(), d.get(8).copied()),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_and_non_images_with_a_cause() {
        assert!(format!("{:#}", decode_bytes(b"").unwrap_err()).contains("empty"));
        let err = format!("{:#}", decode_bytes(b"hello, not an image").unwrap_err());
        assert!(err.contains("not a PNG, JPEG, TIFF or DICOM"), "{err}");
    }

    #[test]
    fn sixteen_bit_is_windowed_min_max_by_default_and_alpha_rescaled() {
        let d = window_colour(&[1000.0, 65535.0, 3000.0, 0.0], 2, Window::Auto, false).unwrap();
        assert_eq!(d.0, vec![0, 255, 255, 0]);
        assert!(window_colour(&[1000.0, 3000.0], 1, Window::None, false).is_err());
    }
}
