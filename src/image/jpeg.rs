//! JPEG decode with libjpeg-turbo's algorithms (MozJPEG's decoder: islow IDCT, fancy
//! upsampling), the library Pillow uses, so JPEG pixels match open_clip's exactly; zune-jpeg
//! (the `image` crate's) rounds chroma and IDCT differently by a few grey levels.

use anyhow::{bail, Context, Result};
use image::{DynamicImage, GrayImage, RgbImage};
use mozjpeg::{ColorSpace, Decompress};

pub fn decode(bytes: &[u8]) -> Result<DynamicImage> {
    // libjpeg pads a cut-off stream with grey and only warns; Pillow reports it, so do we.
    if is_truncated(bytes) {
        bail!("truncated JPEG (no end-of-image marker after the last scan)");
    }
    // libjpeg reports fatal errors by unwinding out of the C code; keep that inside this call.
    match std::panic::catch_unwind(|| decode_unchecked(bytes)) {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("libjpeg error");
            bail!("cannot decode JPEG: {msg}")
        }
    }
}

fn decode_unchecked(bytes: &[u8]) -> Result<DynamicImage> {
    let d = Decompress::new_mem(bytes).context("cannot read JPEG header")?;
    let (w, h) = (d.width() as u32, d.height() as u32);
    let img = match d.color_space() {
        ColorSpace::JCS_GRAYSCALE => {
            let mut s = d.grayscale().context("cannot start JPEG decode")?;
            let data = s.read_scanlines::<u8>().context("cannot decode JPEG")?;
            s.finish().context("cannot finish JPEG decode")?;
            GrayImage::from_raw(w, h, data).map(DynamicImage::ImageLuma8)
        }
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => bail!("CMYK JPEG is not supported"),
        _ => {
            let mut s = d.rgb().context("cannot start JPEG decode")?;
            let data = s.read_scanlines::<u8>().context("cannot decode JPEG")?;
            s.finish().context("cannot finish JPEG decode")?;
            RgbImage::from_raw(w, h, data).map(DynamicImage::ImageRgb8)
        }
    };
    img.context("JPEG decoder returned fewer pixels than the header declares")
}

/// Entropy-coded data never holds 0xFF followed by a marker byte (0xFF is stuffed with 0x00),
/// so a complete stream has an EOI (FF D9) after its last start-of-scan (FF DA).
fn is_truncated(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(p) => !bytes[p..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_is_detected_from_the_markers() {
        assert!(is_truncated(&[0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 3]));
        assert!(!is_truncated(&[
            0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 3, 0xFF, 0xD9, 0
        ]));
        assert!(is_truncated(&[0xFF, 0xD8]));
    }

    #[test]
    fn garbage_after_a_jpeg_header_is_an_error_not_a_crash() {
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xDA, 0, 0, 0xFF, 0xD9];
        bytes.extend_from_slice(&[0x55; 64]);
        assert!(decode(&bytes).is_err());
    }
}
