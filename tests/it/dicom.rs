//! DICOM decoding against pydicom + numpy (tests/fixtures/make_dicom_reference.py) on the real
//! files in ../shared/data/xray/dicom, plus the relations that must hold between them.

use crate::support::*;
use sha2::{Digest, Sha256};
use whyxray::image::decode_file;

fn shared(name: &str) -> std::path::PathBuf {
    root().join("../shared/data/xray/dicom").join(name)
}

fn pixels(name: &str) -> (usize, usize, Vec<u8>) {
    let d = decode_file(&shared(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    assert_eq!(d.image.channels, 1, "{name}");
    (d.image.width, d.image.height, d.image.data)
}

#[test]
fn windowed_pixels_equal_the_pydicom_reference() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/expected/dicom.json")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
    let files = expected["files"].as_object().unwrap();
    assert_eq!(files.len(), 5);
    for (name, want) in files {
        let (w, h, data) = pixels(name);
        assert_eq!(
            [h, w],
            [
                want["shape"][0].as_u64().unwrap() as usize,
                want["shape"][1].as_u64().unwrap() as usize
            ]
        );
        let mean = data.iter().map(|&v| f64::from(v)).sum::<f64>() / data.len() as f64;
        let (min, max) = (data.iter().min().unwrap(), data.iter().max().unwrap());
        let got = format!("{:x}", Sha256::digest(&data));
        assert_eq!(
            got,
            want["sha256"].as_str().unwrap(),
            "{name}: ours min {min} max {max} mean {mean}, reference {want}"
        );
    }
}

#[test]
fn fake_monochrome1_is_the_exact_inverse_of_monochrome2() {
    let (_, _, mono2) = pixels("siim_cr_chest_mono2_jpegbaseline.dcm");
    let (_, _, mono1) = pixels("siim_cr_chest_fake_mono1_jpegbaseline.dcm");
    assert!(mono2.iter().zip(&mono1).all(|(a, b)| *a == 255 - *b));
}

#[test]
fn a_jpeg_stream_decodes_the_same_inside_and_outside_dicom() {
    let (_, _, in_dicom) = pixels("siim_cr_chest_mono2_jpegbaseline.dcm");
    let file =
        decode_file(&root().join("../shared/data/xray/jpeg/siim_chest_1024_gray_nojfif.jpg"))
            .unwrap();
    assert_eq!(in_dicom, file.image.data);
}

#[test]
fn the_monochrome1_cr_uses_its_own_window_and_is_inverted() {
    // RG1: WC 15000 / WW 30000 over stored values 874..26479, MONOCHROME1.
    let (_, _, data) = pixels("nema_rg1_cr_chest_mono1_16bit.dcm");
    let (min, max) = (*data.iter().min().unwrap(), *data.iter().max().unwrap());
    let lin = |x: f64| ((x - 14999.5) / 29999.0 + 0.5) * 255.0;
    assert_eq!(
        max,
        255 - lin(874.0).round() as u8,
        "darkest stored value -> brightest after inversion"
    );
    assert_eq!(min, 255 - lin(26479.0).round() as u8);
}

#[test]
fn an_unsupported_transfer_syntax_is_an_error_naming_it() {
    let err = decode_file(&shared("nema_rg1_cr_chest_mono1_16bit_j2k_lossy.dcm")).unwrap_err();
    assert!(
        format!("{err:#}").contains("1.2.840.10008.1.2.4.91"),
        "{err:#}"
    );
}
