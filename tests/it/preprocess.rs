//! Preprocessing parity: whyxray's decode + Pillow-exact resize against open_clip's tensors.

use crate::support::*;
use whyxray::image::{decode_file, preprocess};
use whyxray::model::config::{OpenClipConfig, PreprocessConfig};

fn config(model: &str) -> PreprocessConfig {
    OpenClipConfig::from_file(&model_dir(model).join("open_clip_config.json"))
        .unwrap()
        .preprocess
}

fn ours(model: &str, name: &str, kind: &str) -> Vec<f32> {
    let path = image_path(name, kind);
    let d = decode_file(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    preprocess(&d, &config(model))
}

/// PNG through the `image` crate and JPEG through libjpeg-turbo's decoder (as Pillow), then
/// Pillow's integer resize: every value equal, on every reference image and config.
#[test]
fn pixels_are_bit_exact_with_open_clip() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for model in MODELS {
        for (name, kind, _) in images(model) {
            let diff = max_abs_diff(&ours(model, &name, &kind), &reference_pixels(model, &name));
            checked += 1;
            if diff != 0.0 {
                failures.push(format!("{model} {name}: max |diff| {diff}"));
            }
        }
    }
    assert_eq!(checked, 48, "3 configs x 16 images");
    assert!(
        failures.is_empty(),
        "pixels differ from open_clip:\n{}",
        failures.join("\n")
    );
}

#[test]
fn exif_orientation_is_applied() {
    let d = decode_file(&image_path("nih_exif_rot90.jpg", "data")).unwrap();
    // Stored 400 wide and 512 tall, tagged "rotate 90": upright it is 512 x 400.
    assert_eq!((d.image.width, d.image.height), (512, 400));
}

#[test]
fn sixteen_bit_png_is_windowed_min_max_by_default_not_clamped() {
    let path = image_path("nema_rg1_chest_16bit_half.png", "data");
    let raw = image::open(&path).unwrap().into_luma16().into_raw();
    let d = decode_file(&path).unwrap();
    assert_eq!(d.report.bits_stored, 16);
    assert_eq!((d.image.width, d.image.height), (921, 978));
    let (min, max) = (
        f64::from(*raw.iter().min().unwrap()),
        f64::from(*raw.iter().max().unwrap()),
    );
    for (got, v) in d.image.data.iter().zip(&raw) {
        assert_eq!(
            *got,
            ((f64::from(*v) - min) / (max - min) * 255.0).round() as u8
        );
    }
    // Pillow's convert("RGB") would clamp every value above 255 to white.
    let mean = d.image.data.iter().map(|&v| f64::from(v)).sum::<f64>() / d.image.data.len() as f64;
    assert!(
        (60.0..200.0).contains(&mean),
        "a picture, not a white sheet: mean {mean}"
    );
}

/// The derived PNG is `32767 - dcm[2y][2x]` (MONOCHROME1 made MONOCHROME2): windowed the same
/// way (min-max), it must show the DICOM's picture, within rounding (its min and max come
/// from every second pixel only).
#[test]
fn the_derived_16_bit_png_shows_the_dicom_s_picture() {
    use whyxray::image::{decode_file_with, DecodeOptions, Window};
    let minmax = DecodeOptions {
        window: Window::MinMax,
        ..DecodeOptions::default()
    };
    let png = decode_file_with(
        &image_path("nema_rg1_chest_16bit_half.png", "data"),
        &minmax,
    )
    .unwrap();
    let dcm_path = root().join("../shared/data/xray/dicom/nema_rg1_cr_chest_mono1_16bit.dcm");
    let dcm = decode_file_with(&dcm_path, &minmax).unwrap();
    let (pw, dw) = (png.image.width, dcm.image.width);
    let mut worst = 0i32;
    for y in 0..png.image.height {
        for x in 0..pw {
            let a = i32::from(png.image.data[y * pw + x]);
            let b = i32::from(dcm.image.data[2 * y * dw + 2 * x]);
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst <= 1, "max difference {worst} grey levels");
}

#[test]
fn a_16_bit_tiff_decodes_as_the_same_16_bit_png() {
    let path = image_path("nema_rg1_chest_16bit_half.png", "data");
    let img = image::open(&path).unwrap();
    let mut tiff = std::io::Cursor::new(Vec::new());
    img.write_to(&mut tiff, image::ImageFormat::Tiff).unwrap();
    let from_tiff = whyxray::image::decode_bytes(tiff.get_ref()).unwrap();
    let from_png = whyxray::image::decode_file(&path).unwrap();
    assert_eq!(from_tiff.report.format, "TIFF");
    assert_eq!(from_tiff.report.bits_stored, 16);
    assert_eq!(from_tiff.image.data, from_png.image.data);
}

#[test]
fn damaged_dicoms_are_errors_naming_the_cause() {
    let dcm =
        std::fs::read(root().join("tests/data/dicom/synthetic_multiframe_12bit.dcm")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("zero bytes", Vec::new(), "empty"),
        (
            "truncated",
            dcm[..dcm.len() - 700].to_vec(),
            "not a readable DICOM",
        ),
        ("header only", dcm[..140].to_vec(), "DICOM"),
        ("huge", huge_dicom(dcm.clone()), "megapixel limit"),
    ];
    for (what, bytes, cause) in cases {
        let err = format!("{:#}", whyxray::image::decode_bytes(&bytes).unwrap_err());
        assert!(err.contains(cause), "{what}: {err}");
    }
}

/// Files the decode fuzzer found: each was a panic, or a multi-gigabyte allocation that
/// took seconds, and must now be a prompt error naming the cause.
#[test]
fn fuzzer_findings_are_errors_with_a_cause() {
    for (file, cause) in [
        ("zero_width_ybr.dcm", "0 x 12 pixels"),
        (
            "j2k_stream_larger_than_header.dcm",
            "JPEG 2000 stream is 50 x 40 pixels, but the DICOM header says 50 x 32",
        ),
        (
            "j2k_zero_samples_per_pixel.dcm",
            "JPEG 2000 stream has 1 components, but the DICOM header says 0",
        ),
        (
            "unknown_vr_4gb_length.dcm",
            "element (0010,FFFF) declares 1953397075 bytes",
        ),
        (
            "group0_4gb_length.dcm",
            "element (0000,0000) declares 4294836224 bytes",
        ),
        (
            "pixel_data_4gb_length.dcm",
            "element (7FE0,0010) declares 4294836224 bytes",
        ),
    ] {
        let path = root().join("tests/data/fuzz").join(file);
        let err = format!("{:#}", whyxray::image::decode_file(&path).unwrap_err());
        assert!(err.contains(cause), "{file}: {err}");
    }
}

#[test]
fn a_jpeg_frame_larger_than_its_dicom_header_is_refused_before_decoding() {
    let mut dcm =
        std::fs::read(root().join("tests/data/dicom/synthetic_multiframe_jpeg.dcm")).unwrap();
    let rows = [0x28, 0, 0x10, 0, b'U', b'S', 2, 0];
    let at = dcm.windows(8).position(|w| w == rows).unwrap() + 8;
    dcm[at..at + 2].copy_from_slice(&16u16.to_le_bytes());
    let err = format!("{:#}", whyxray::image::decode_bytes(&dcm).unwrap_err());
    assert!(
        err.contains("JPEG frame is 40 x 32 pixels, but the DICOM header says 40 x 16"),
        "{err}"
    );
}

#[test]
fn corrupt_inputs_are_errors_not_panics() {
    let png = std::fs::read(image_path("nih_00027426_000_512.png", "data")).unwrap();
    for (what, bytes) in [
        ("truncated", &png[..png.len() / 3]),
        ("header only", &png[..40]),
        ("empty", &png[..0]),
    ] {
        assert!(whyxray::image::decode_bytes(bytes).is_err(), "{what}");
    }
}
