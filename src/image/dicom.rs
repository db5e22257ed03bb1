//! Decode (DICOM): a DICOM file -> 8-bit grey or RGB pixels, applying in the standard's order
//! the modality LUT (rescale slope/intercept), the VOI transform (the file's VOI LUT Sequence,
//! else its window center/width; identity for 8-bit data without either, min-max otherwise;
//! or what `--window` asks for) and the MONOCHROME1 inversion, with BitsStored and signedness
//! respected. dicom-rs parses and decodes (JPEG 2000 through the pure-Rust openjp2); JPEG
//! baseline frames go through the same libjpeg-turbo decoder as JPEG files, so a JPEG stream
//! gives identical pixels in or out of DICOM (and Pillow's/pydicom's).

use super::decode::check_size;
use super::report::{DecodeOptions, Report};
use super::resample::Image8;
use super::window::{to_u8, Window};
use super::Decoded;
use anyhow::{bail, Context, Result};
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions, Tag};
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder, VoiLutOption};

/// A DICOM Part 10 file: 128-byte preamble, then `DICM`.
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM")
}

const JPEG_BASELINE: &[&str] = &["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"];
const JPEG_2000: &[&str] = &["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"];
const JPEG_LS: &[&str] = &["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"];

pub fn decode(bytes: &[u8], opts: &DecodeOptions) -> Result<Decoded> {
    check_lengths(bytes)?;
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
    let (rows, cols) = (
        number(&obj, tags::ROWS).unwrap_or(0.0),
        number(&obj, tags::COLUMNS).unwrap_or(0.0),
    );
    check_size(cols as u64, rows as u64, opts.max_pixels)?;
    let frames = number(&obj, tags::NUMBER_OF_FRAMES).map_or(1, |n| n.max(1.0) as u32);
    let frame = opts.frame.unwrap_or(0);
    if frame >= frames {
        bail!("--frame {frame} asked for, but this DICOM has {frames} frame(s)");
    }
    let mut report = Report {
        format: "DICOM",
        transfer_syntax: Some(ts.clone()),
        modality: text(&obj, tags::MODALITY),
        photometric: pi.clone(),
        bits_stored: number(&obj, tags::BITS_STORED).unwrap_or(16.0) as u16,
        signed: Some(number(&obj, tags::PIXEL_REPRESENTATION) == Some(1.0)),
        frames,
        frame,
        ..Report::default()
    };
    if frames > 1 && opts.frame.is_none() {
        report.notes.push(format!(
            "multi-frame DICOM ({frames} frames): only frame 0 is used (--frame N picks another)"
        ));
    }
    if JPEG_2000.contains(&ts.as_str()) {
        let samples = number(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1.0) as u16;
        check_j2k_size(&obj, frame, frames, (cols as u64, rows as u64, samples))?;
    }
    let (values, width, height, channels, decoded_pi) = if JPEG_BASELINE.contains(&ts.as_str()) {
        let (v, w, h, c) = jpeg_frame(&obj, frame, frames, (cols as u64, rows as u64))?;
        // libjpeg hands back RGB whatever the colour space of the stream.
        (v, w, h, c, if c == 3 { "RGB".into() } else { pi.clone() })
    } else {
        native_frame(&obj, &ts, frame)?
    };
    let data = match decoded_pi.as_str() {
        "MONOCHROME1" | "MONOCHROME2" if channels == 1 => {
            let rescaled = rescale(&obj, values, &mut report);
            let eight_bit =
                report.bits_stored <= 8 && rescaled.iter().all(|v| (0.0..=255.0).contains(v));
            let (mut v, how) = voi(&obj, &rescaled, opts.window, eight_bit)?;
            if pi == "MONOCHROME1" {
                v.iter_mut().for_each(|x| *x = 255 - *x);
                report.inverted = true;
            }
            report.window = how;
            report.set_ranges(&rescaled, &v);
            v
        }
        "RGB" | "YBR_FULL" if channels == 3 => {
            let rgb = if decoded_pi == "YBR_FULL" {
                ybr_full_to_rgb(&values)
            } else {
                values
            };
            let v: Vec<u8> = rgb
                .iter()
                .map(|x| (x + 0.5).floor().clamp(0.0, 255.0) as u8)
                .collect();
            report.window = "none (8-bit colour)".into();
            report.set_ranges(&rgb, &v);
            v
        }
        _ => bail!(
            "unsupported DICOM photometric interpretation {pi:?} with {channels} sample(s) per pixel \
             (transfer syntax {ts})"
        ),
    };
    (report.width, report.height, report.channels) = (width, height, channels);
    Ok(Decoded {
        image: Image8::new(width, height, channels, data),
        palette: false,
        report,
    })
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    Some(obj.element(tag).ok()?.to_str().ok()?.trim().to_string())
}

/// The first value of a (possibly multi-valued) numeric attribute.
fn number(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    obj.element(tag)
        .ok()?
        .to_multi_float64()
        .ok()?
        .first()
        .copied()
}

type Frame = (Vec<f64>, usize, usize, usize);

/// One frame's samples as stored (signedness and BitsStored applied, no rescale), and their
/// photometric interpretation after decoding (a codec may have turned YBR into RGB).
fn native_frame(
    obj: &DefaultDicomObject,
    ts: &str,
    frame: u32,
) -> Result<(Vec<f64>, usize, usize, usize, String)> {
    let decoded = obj.decode_pixel_data_frame(frame).with_context(|| {
        if JPEG_LS.contains(&ts) && !cfg!(feature = "jpeg-ls") {
            format!(
                "cannot decode DICOM pixel data: JPEG-LS (transfer syntax {ts}) needs a whyxray \
                 built with `cargo build --release --features jpeg-ls` (CharLS)"
            )
        } else {
            format!("cannot decode DICOM pixel data (unsupported or damaged; transfer syntax {ts})")
        }
    })?;
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
    let pi = decoded.photometric_interpretation().to_string();
    let signed = decoded.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
    let values = stored_bits(
        values,
        decoded.bits_stored(),
        decoded.bits_allocated(),
        signed,
    );
    Ok((values, w, h, c, pi))
}

/// Only the low BitsStored bits of each sample are the value (PS3.5 8.1.1): bits above may hold
/// overlays or garbage, and a signed value's sign bit is bit BitsStored-1. dicom-pixeldata
/// hands back whole 8- or 16-bit words, so mask and sign-extend here, as pydicom does.
fn stored_bits(values: Vec<f64>, stored: u16, allocated: u16, signed: bool) -> Vec<f64> {
    if stored == 0 || stored >= allocated || stored >= 32 {
        return values;
    }
    let (mask, sign) = ((1i64 << stored) - 1, 1i64 << (stored - 1));
    values
        .into_iter()
        .map(|v| {
            let u = (v as i64) & mask;
            (if signed && u & sign != 0 {
                u - (1i64 << stored)
            } else {
                u
            }) as f64
        })
        .collect()
}

/// JPEG baseline: one frame's fragments decoded as a JPEG file would be.
fn jpeg_frame(
    obj: &DefaultDicomObject,
    frame: u32,
    frames: u32,
    (cols, rows): (u64, u64),
) -> Result<Frame> {
    let stream = encapsulated_frame(obj, frame, frames)?;
    match jpeg_size(&stream) {
        Some(size) if size == (cols, rows) => {}
        Some((w, h)) => {
            bail!("JPEG frame is {w} x {h} pixels, but the DICOM header says {cols} x {rows}")
        }
        None => bail!("JPEG frame inside DICOM without a frame header (SOF)"),
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

/// (width, height) from a JPEG stream's first SOF marker, read before anything is decoded:
/// libjpeg allocates what the stream declares, whatever the DICOM header says.
fn jpeg_size(stream: &[u8]) -> Option<(u64, u64)> {
    let mut pos = 2; // after SOI
    while pos + 9 <= stream.len() {
        if stream[pos] != 0xFF {
            return None;
        }
        let marker = stream[pos + 1];
        let len = u16::from_be_bytes([stream[pos + 2], stream[pos + 3]]) as usize;
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let h = u16::from_be_bytes([stream[pos + 5], stream[pos + 6]]);
            let w = u16::from_be_bytes([stream[pos + 7], stream[pos + 8]]);
            return Some((u64::from(w), u64::from(h)));
        }
        pos += 2 + len;
    }
    None
}

/// The compressed bytes of one frame of encapsulated pixel data.
fn encapsulated_frame(obj: &DefaultDicomObject, frame: u32, frames: u32) -> Result<Vec<u8>> {
    let pixel_data = obj.element(tags::PIXEL_DATA)?;
    let value = pixel_data.value();
    let fragments = value
        .fragments()
        .context("compressed DICOM pixel data without encapsulated fragments")?;
    frame_stream(
        fragments,
        value.offset_table().unwrap_or(&[]),
        frame,
        frames,
    )
}

/// The bytes of frame `n`: all fragments for a single frame; one fragment per frame when the
/// counts agree; else the fragments the basic offset table points at (offsets count 8 bytes
/// of item header per fragment).
fn frame_stream(fragments: &[Vec<u8>], offsets: &[u32], n: u32, frames: u32) -> Result<Vec<u8>> {
    let n = n as usize;
    if frames == 1 {
        return Ok(fragments.concat());
    }
    if fragments.len() == frames as usize {
        return Ok(fragments[n].clone());
    }
    let Some(&start) = offsets.get(n) else {
        return frame_by_eoi(fragments, n, frames);
    };
    let end = offsets.get(n + 1).copied().unwrap_or(u32::MAX);
    let mut pos = 0u64;
    let mut stream = Vec::new();
    for f in fragments {
        if (u64::from(start)..u64::from(end)).contains(&pos) {
            stream.extend_from_slice(f);
        }
        pos += 8 + f.len() as u64;
    }
    if stream.is_empty() {
        bail!("the offset table points frame {n} past the pixel data");
    }
    Ok(stream)
}

/// Without an offset table: a frame ends with the fragment that ends with an EOI marker (an
/// odd-length stream is padded with one zero byte), as pydicom splits them.
fn frame_by_eoi(fragments: &[Vec<u8>], n: usize, frames: u32) -> Result<Vec<u8>> {
    let ends_frame = |f: &Vec<u8>| {
        let t = f.strip_suffix(&[0]).unwrap_or(f);
        t.ends_with(&[0xFF, 0xD9])
    };
    let mut groups = vec![Vec::new()];
    for f in fragments {
        groups.last_mut().expect("one group").extend_from_slice(f);
        if ends_frame(f) {
            groups.push(Vec::new());
        }
    }
    groups.retain(|g| !g.is_empty());
    if groups.len() != frames as usize {
        bail!(
            "multi-frame DICOM: {} fragments make {} frames by their end markers, the header says {frames}",
            fragments.len(),
            groups.len()
        );
    }
    Ok(std::mem::take(&mut groups[n]))
}

/// The JPEG 2000 codestream must be what the header says: dicom-rs's J2K adapter writes the
/// decoded samples into a buffer sized from Rows x Columns x SamplesPerPixel and panics on a
/// larger stream or more components (found by the decode fuzzer). Reads the SIZ marker
/// segment (ISO 15444-1 A.5.1).
fn check_j2k_size(
    obj: &DefaultDicomObject,
    frame: u32,
    frames: u32,
    (cols, rows, samples): (u64, u64, u16),
) -> Result<()> {
    let stream = encapsulated_frame(obj, frame, frames)?;
    let at = stream
        .windows(4)
        .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])
        .context("JPEG 2000 frame without a codestream header (SOC, SIZ)")?;
    let be = |p: usize, n: usize| {
        let b = stream.get(at + p..at + p + n)?;
        Some(b.iter().fold(0u64, |v, &x| v << 8 | u64::from(x)))
    };
    let (Some(x), Some(y), Some(x0), Some(y0), Some(c)) =
        (be(8, 4), be(12, 4), be(16, 4), be(20, 4), be(40, 2))
    else {
        bail!("JPEG 2000 frame with a truncated SIZ marker");
    };
    let (w, h) = (x.saturating_sub(x0), y.saturating_sub(y0));
    if (w, h) != (cols, rows) {
        bail!("JPEG 2000 stream is {w} x {h} pixels, but the DICOM header says {cols} x {rows}");
    }
    if c != u64::from(samples) {
        bail!("JPEG 2000 stream has {c} components, but the DICOM header says {samples} sample(s) per pixel");
    }
    Ok(())
}

/// Modality LUT: `v * RescaleSlope + RescaleIntercept` (defaults 1 and 0).
fn rescale(obj: &InMemDicomObject, values: Vec<f64>, report: &mut Report) -> Vec<f64> {
    let slope = number(obj, tags::RESCALE_SLOPE);
    let intercept = number(obj, tags::RESCALE_INTERCEPT);
    if slope.is_some() || intercept.is_some() {
        report.rescale = Some([slope.unwrap_or(1.0), intercept.unwrap_or(0.0)]);
    }
    let (slope, intercept) = (slope.unwrap_or(1.0), intercept.unwrap_or(0.0));
    if slope == 1.0 && intercept == 0.0 {
        return values;
    }
    values.into_iter().map(|v| v * slope + intercept).collect()
}

/// The VOI transform. With `auto`/`dicom`, a VOI LUT Sequence wins over a window when both
/// are present, as in pydicom's `apply_voi_lut`; other `--window` values are applied as asked.
fn voi(
    obj: &InMemDicomObject,
    values: &[f64],
    window: Window,
    eight_bit: bool,
) -> Result<(Vec<u8>, String)> {
    if matches!(window, Window::Auto | Window::Dicom) {
        if let Some(item) = obj
            .element(tags::VOILUT_SEQUENCE)
            .ok()
            .and_then(|e| e.items())
            .and_then(|items| items.first())
        {
            let signed = number(obj, tags::PIXEL_REPRESENTATION) == Some(1.0);
            return voi_lut(item, values, signed);
        }
    }
    let file_window = number(obj, tags::WINDOW_CENTER).zip(number(obj, tags::WINDOW_WIDTH));
    to_u8(values, window, file_window, eight_bit)
}

/// The first VOI LUT: values below its first mapped value take entry 0, above its end the
/// last entry (PS3.3 C.11.2.1.1); entries of `depth` bits are scaled onto 0..255.
fn voi_lut(item: &InMemDicomObject, values: &[f64], signed: bool) -> Result<(Vec<u8>, String)> {
    let descriptor: Vec<i64> = item
        .element(tags::LUT_DESCRIPTOR)
        .ok()
        .and_then(|e| e.to_multi_int().ok())
        .filter(|d: &Vec<i64>| d.len() == 3)
        .context("VOI LUT without a valid LUT Descriptor")?;
    // Values 1 and 3 are always unsigned; the first mapped value is SS for signed data (PS3.3
    // C.11.2.1.1), which an implicit-VR file cannot say, so it is read from the 16 bits here.
    let unsigned = |v: i64| v.rem_euclid(65536);
    let entries = match unsigned(descriptor[0]) {
        0 => 65536,
        n => n as usize,
    };
    let first = if signed {
        i64::from(unsigned(descriptor[1]) as u16 as i16)
    } else {
        unsigned(descriptor[1])
    };
    let depth = unsigned(descriptor[2]);
    if !(8..=16).contains(&depth) {
        bail!("VOI LUT with {depth} bits per entry is not supported");
    }
    let lut: Vec<f64> = item
        .element(tags::LUT_DATA)
        .ok()
        .and_then(|e| e.to_multi_int::<u16>().ok())
        .context("VOI LUT without readable LUT Data")?
        .into_iter()
        .map(f64::from)
        .collect();
    if lut.len() < entries {
        bail!(
            "VOI LUT has {} entries, its descriptor says {entries}",
            lut.len()
        );
    }
    let top = ((1u32 << depth) - 1) as f64;
    let out = values
        .iter()
        .map(|&v| {
            let i = (v - first as f64).floor().clamp(0.0, (entries - 1) as f64) as usize;
            (lut[i] / top * 255.0).round().clamp(0.0, 255.0) as u8
        })
        .collect();
    Ok((
        out,
        format!("dicom VOI LUT ({entries} entries from {first}, {depth}-bit)"),
    ))
}

/// YBR_FULL (PS3.3 C.7.6.3.1.2) to RGB, for uncompressed colour DICOM, with pydicom's
/// coefficients (`convert_color_space`), rounded half up by the caller.
fn ybr_full_to_rgb(values: &[f64]) -> Vec<f64> {
    let (gb, gr) = (-0.114 * 1.772 / 0.587, -0.299 * 1.402 / 0.587);
    values
        .chunks_exact(3)
        .flat_map(|p| {
            let (y, cb, cr) = (p[0], p[1] - 128.0, p[2] - 128.0);
            [y + 1.402 * cr, y + gb * cb + gr * cr, y + 1.772 * cb]
        })
        .collect()
}

/// Walks the file's element headers and refuses any element that declares more bytes than
/// the file has left. dicom-rs allocates (and zero-fills) a value's declared length before
/// reading it, so a corrupt 6 KB file could otherwise take 4 GB and seconds per decode thread
/// (found by the decode fuzzer). Where the walk cannot follow the encoding (deflate, big
/// endian, UN of undefined length) it stops and leaves the rest to dicom-rs.
fn check_lengths(bytes: &[u8]) -> Result<()> {
    let u16_at = |p: usize| {
        bytes
            .get(p..p + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |p: usize| {
        bytes
            .get(p..p + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut pos = 132;
    let mut explicit = true;
    let mut in_meta = true;
    // Inside encapsulated pixel data, items are fragments of raw bytes, not datasets.
    let mut fragments = false;
    while let (Some(group), Some(element)) = (u16_at(pos), u16_at(pos + 2)) {
        if in_meta && group != 0x0002 {
            in_meta = false;
            let ts = meta_transfer_syntax(&bytes[..pos]);
            match ts.as_deref() {
                Some("1.2.840.10008.1.2") => explicit = false,
                Some("1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.2") => return Ok(()),
                _ => {}
            }
        }
        // Items and delimiters: a tag and a 4-byte length, no VR. Dataset items are stepped
        // into; fragments are checked and skipped; the sequence delimiter ends the fragments.
        if group == 0xFFFE {
            let len = u32_at(pos + 4).unwrap_or(0);
            pos += 8;
            if element == 0xE0DD {
                fragments = false;
            } else if fragments && element == 0xE000 {
                check_fits(group, element, len, bytes.len().saturating_sub(pos))?;
                pos += len as usize;
            }
            continue;
        }
        let (vr, len, header) = if explicit {
            let vr = bytes.get(pos + 4..pos + 6).unwrap_or_default();
            // The VRs with a 2-byte length; any other (unknown ones too, which dicom-rs reads
            // as UN) has 2 reserved bytes and a 4-byte length.
            let short = [
                b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
                b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
            ];
            if short.iter().any(|s| s[..] == *vr) {
                (vr, u16_at(pos + 6).map(u32::from), 8)
            } else {
                (vr, u32_at(pos + 8), 12)
            }
        } else {
            (&b""[..], u32_at(pos + 4), 8)
        };
        let Some(len) = len else { break };
        pos += header;
        if len == u32::MAX {
            if vr == b"UN" {
                return Ok(());
            }
            // A sequence or encapsulated pixel data: its items follow.
            fragments = vr != b"SQ" && (group, element) == (0x7FE0, 0x0010);
            continue;
        }
        check_fits(group, element, len, bytes.len().saturating_sub(pos))?;
        // Step into sequences with a defined length (implicit VR: SQ is not marked, so the
        // walk skips their content whole, which the length check above has covered).
        if vr != b"SQ" {
            pos += len as usize;
        }
    }
    Ok(())
}

fn check_fits(group: u16, element: u16, len: u32, remaining: usize) -> Result<()> {
    if len as usize > remaining {
        bail!(
            "not a readable DICOM file: element ({group:04X},{element:04X}) declares {len} bytes, \
             but only {remaining} remain (truncated or corrupt)"
        );
    }
    Ok(())
}

/// (0002,0010) from the file meta group, read without dicom-rs.
fn meta_transfer_syntax(meta: &[u8]) -> Option<String> {
    let at = meta
        .windows(6)
        .position(|w| w == [0x02, 0x00, 0x10, 0x00, b'U', b'I'])?;
    let len = u16::from_le_bytes(meta.get(at + 6..at + 8)?.try_into().ok()?) as usize;
    let value = meta.get(at + 8..at + 8 + len)?;
    Some(
        String::from_utf8_lossy(value)
            .trim_end_matches(['\0', ' '])
            .to_string(),
    )
}
