//! Decode: an image file's bytes -> 8-bit pixels as Pillow would hand them to the resize, plus
//! what the decoder had to decide (EXIF orientation, bit depth). PNG through the `image` crate
//! and JPEG through libjpeg-turbo's decoder (MozJPEG), both bit-identical to Pillow's pixels.

use super::resample::Image8;
use anyhow::{bail, Context, Result};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::Cursor;
use std::path::Path;

/// File extensions searched for in directories (case-insensitive).
pub const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "dcm", "dicom"];

/// Images larger than this (20,000 x 20,000) are refused from their header, before any pixel
/// buffer is allocated: a corrupt or hostile header must not take the machine's memory.
pub const MAX_PIXELS: u64 = 400_000_000;

#[derive(Debug, Clone)]
pub struct Decoded {
    /// 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA) channels.
    pub image: Image8,
    /// A palette PNG: Pillow resizes those with NEAREST whatever filter is asked for.
    pub palette: bool,
    /// Significant bits of a 16-bit source that were scaled down to 8, if any.
    pub scaled_from_bits: Option<u8>,
}

pub fn decode_file(path: &Path) -> Result<Decoded> {
    let bytes = std::fs::read(path).context("cannot read file")?;
    decode_bytes(&bytes)
}

pub fn decode_bytes(bytes: &[u8]) -> Result<Decoded> {
    if bytes.is_empty() {
        bail!("empty file");
    }
    if super::dicom::is_dicom(bytes) {
        return super::dicom::decode(bytes);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .context("cannot read image header")?;
    let format = match reader.format() {
        Some(f @ (ImageFormat::Png | ImageFormat::Jpeg)) => f,
        Some(f) => bail!("unsupported image format {f:?} (PNG, JPEG or DICOM)"),
        None => bail!("not a PNG, JPEG or DICOM image"),
    };
    let mut decoder = reader.into_decoder().context("cannot decode image")?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        bail!(
            "image is {w} x {h} pixels, over the {}-megapixel limit",
            MAX_PIXELS / 1_000_000
        );
    }
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
    let sig_bits = if format == ImageFormat::Png {
        png_significant_bits(bytes)
    } else {
        None
    };
    to_image8(img, palette, sig_bits)
}

fn to_image8(img: DynamicImage, palette: bool, sig_bits: Option<u8>) -> Result<Decoded> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let eight = |channels, data| {
        Ok(Decoded {
            image: Image8::new(w, h, channels, data),
            palette,
            scaled_from_bits: None,
        })
    };
    match img {
        DynamicImage::ImageLuma8(b) => eight(1, b.into_raw()),
        DynamicImage::ImageLumaA8(b) => eight(2, b.into_raw()),
        DynamicImage::ImageRgb8(b) => eight(3, b.into_raw()),
        DynamicImage::ImageRgba8(b) => eight(4, b.into_raw()),
        DynamicImage::ImageLuma16(b) => scale16(w, h, 1, &b.into_raw(), sig_bits),
        DynamicImage::ImageLumaA16(b) => scale16(w, h, 2, &b.into_raw(), sig_bits),
        DynamicImage::ImageRgb16(b) => scale16(w, h, 3, &b.into_raw(), sig_bits),
        DynamicImage::ImageRgba16(b) => scale16(w, h, 4, &b.into_raw(), sig_bits),
        other => bail!("unsupported pixel format {:?}", other.color()),
    }
}

/// 16-bit samples to 8 bits by their real bit depth (the PNG `sBIT` chunk, else 16), with
/// rounding. Pillow instead clamps at 255, which turns a 12-bit X-ray white.
fn scale16(
    w: usize,
    h: usize,
    channels: usize,
    data: &[u16],
    sig_bits: Option<u8>,
) -> Result<Decoded> {
    let bits = sig_bits.filter(|b| (1..=16).contains(b)).unwrap_or(16);
    let max = f64::from((1u32 << bits) - 1);
    let data = data
        .iter()
        .map(|&v| (f64::from(v) * 255.0 / max).round().min(255.0) as u8)
        .collect();
    Ok(Decoded {
        image: Image8::new(w, h, channels, data),
        palette: false,
        scaled_from_bits: Some(bits),
    })
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

fn png_significant_bits(bytes: &[u8]) -> Option<u8> {
    png_chunks(bytes)
        .find(|(k, _)| *k == b"sBIT")
        .and_then(|(_, d)| d.iter().copied().max())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_and_non_images_with_a_cause() {
        assert!(format!("{:#}", decode_bytes(b"").unwrap_err()).contains("empty"));
        let err = format!("{:#}", decode_bytes(b"hello, not an image").unwrap_err());
        assert!(err.contains("not a PNG, JPEG or DICOM"), "{err}");
    }

    #[test]
    fn sixteen_bit_scales_by_significant_bits() {
        let d = scale16(2, 1, 1, &[4095, 2048], Some(12)).unwrap();
        assert_eq!(d.image.data, vec![255, 128]);
        let d = scale16(2, 1, 1, &[65535, 257], None).unwrap();
        assert_eq!(d.image.data, vec![255, 1]);
    }
}
