//! Decode (DICOM): a DICOM file -> 8-bit grey or RGB pixels, applying in the standard's order
//! the modality LUT (rescale slope/intercept), the VOI window (the file's own center/width;
//! identity for 8-bit data without one, min-max otherwise) and the MONOCHROME1 inversion, with
//! BitsStored and signedness respected. dicom-rs parses and decodes; JPEG baseline frames go
//! through the same libjpeg-turbo decoder as JPEG files, so a JPEG stream gives identical
//! pixels in or out of DICOM (and Pillow's/pydicom's).

use super::resample::Image8;
use super::window::{to_u8, Window};
use super::Decoded;
use anyhow::{bail, Context, Result};
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions, Tag};
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder, VoiLutOption};

/// A DICOM Part 10 file: 128-byte preamble, then `DICM`.
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM")
}

const JPEG_BASELINE: &[&str] = &["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"];

pub fn decode(bytes: &[u8], window: Window) -> Result<Decoded> {
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .from_reader(bytes)
        .context("not a readable DICOM file")?;
    if obj.element(tags::PIXEL_DATA).is_err() {
        bail!("DICOM file has no pixel data");
    }
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string();
    let pi = text(&obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    let monochrome = pi == "MONOCHROME1" || pi == "MONOCHROME2";
    let (values, width, height, channels) = if JPEG_BASELINE.contains(&ts.as_str()) {
        jpeg_frame(&obj)?
    } else {
        native_frame(&obj, &ts)?
    };
    let data = if monochrome {
        let rescaled = rescale(&obj, values);
        let file_window = number(&obj, tags::WINDOW_CENTER).zip(number(&obj, tags::WINDOW_WIDTH));
        let bits = number(&obj, tags::BITS_STORED).unwrap_or(16.0);
        let in_range = rescaled.iter().all(|v| (0.0..=255.0).contains(v));
        let mut v = to_u8(&rescaled, window, file_window, bits <= 8.0 && in_range)?;
        if pi == "MONOCHROME1" {
            v.iter_mut().for_each(|x| *x = 255 - *x);
        }
        v
    } else if channels == 3 && (pi == "RGB" || JPEG_BASELINE.contains(&ts.as_str())) {
        values
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect()
    } else {
        bail!("unsupported DICOM photometric interpretation {pi:?} ({channels} samples per pixel)");
    };
    Ok(Decoded {
        image: Image8::new(width, height, channels, data),
        palette: false,
        windowed: monochrome,
    })
}

fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    Some(obj.element(tag).ok()?.to_str().ok()?.trim().to_string())
}

/// The first value of a (possibly multi-valued) numeric attribute.
fn number(obj: &DefaultDicomObject, tag: Tag) -> Option<f64> {
    obj.element(tag)
        .ok()?
        .to_multi_float64()
        .ok()?
        .first()
        .copied()
}

type Frame = (Vec<f64>, usize, usize, usize);

/// The first frame's samples as stored (signedness and BitsStored applied, no rescale).
fn native_frame(obj: &DefaultDicomObject, ts: &str) -> Result<Frame> {
    let decoded = obj
        .decode_pixel_data_frame(0)
        .with_context(|| format!("cannot decode DICOM pixel data (transfer syntax {ts})"))?;
    let opts = ConvertOptions::new()
        .with_modality_lut(ModalityLutOption::None)
        .with_voi_lut(VoiLutOption::Identity);
    let values = decoded
        .to_vec_frame_with_options::<f64>(0, &opts)
        .context("cannot read DICOM pixel values")?;
    let (w, h, c) = (
        decoded.columns() as usize,
        decoded.rows() as usize,
        decoded.samples_per_pixel() as usize,
    );
    if values.len() != w * h * c {
        bail!(
            "DICOM frame has {} samples, {w} x {h} x {c} expected",
            values.len()
        );
    }
    Ok((values, w, h, c))
}

/// JPEG baseline: the first frame's fragments decoded as a JPEG file would be.
fn jpeg_frame(obj: &DefaultDicomObject) -> Result<Frame> {
    let pixel_data = obj.element(tags::PIXEL_DATA)?;
    let fragments = pixel_data
        .value()
        .fragments()
        .context("JPEG DICOM without encapsulated fragments")?;
    let frames = number(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1.0);
    // One frame: all fragments are its stream. Several: take fragments up to the first EOI.
    let mut stream = Vec::new();
    for f in fragments {
        stream.extend_from_slice(f);
        if frames > 1.0 && f.windows(2).any(|w| w == [0xFF, 0xD9]) {
            break;
        }
    }
    let img = super::jpeg::decode(&stream).context("JPEG frame inside DICOM")?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (values, c): (Vec<f64>, usize) = match img {
        image::DynamicImage::ImageLuma8(b) => {
            (b.into_raw().into_iter().map(f64::from).collect(), 1)
        }
        other => (
            other
                .into_rgb8()
                .into_raw()
                .into_iter()
                .map(f64::from)
                .collect(),
            3,
        ),
    };
    Ok((values, w, h, c))
}

/// Modality LUT: `v * RescaleSlope + RescaleIntercept` (defaults 1 and 0).
fn rescale(obj: &DefaultDicomObject, values: Vec<f64>) -> Vec<f64> {
    let slope = number(obj, tags::RESCALE_SLOPE).unwrap_or(1.0);
    let intercept = number(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0);
    if slope == 1.0 && intercept == 0.0 {
        return values;
    }
    values.into_iter().map(|v| v * slope + intercept).collect()
}
