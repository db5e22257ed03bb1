//! Window: high-bit-depth samples (DICOM after its modality LUT, 12/16-bit PNG) -> 8 bits, on
//! purpose rather than by clamping (Pillow's 255-clamp turns a 12-bit X-ray white). `--window`.

use anyhow::{bail, Result};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Window {
    /// DICOM: the file's VOI window; other high-bit data: min-max; 8-bit data: unchanged.
    #[default]
    Auto,
    /// The DICOM file's own VOI window (center/width); where there is none, as `Auto`.
    Dicom,
    /// The image's own minimum to maximum onto 0..255.
    MinMax,
    /// The LO-th to HI-th percentile onto 0..255 (clipping the tails).
    Percentile(f64, f64),
    /// A window given by hand, center C and width W in the units after the modality LUT
    /// (Hounsfield units for CT), with DICOM's LINEAR function.
    CenterWidth(f64, f64),
    /// No windowing: only for data already 8-bit.
    None,
}

impl std::str::FromStr for Window {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => Window::Auto,
            "dicom" => Window::Dicom,
            "minmax" => Window::MinMax,
            "none" => Window::None,
            _ if s.starts_with("cw:") => {
                let parsed = s[3..].split_once(',').and_then(|(c, w)| {
                    Some((c.trim().parse::<f64>().ok()?, w.trim().parse::<f64>().ok()?))
                });
                match parsed {
                    Some((c, w)) if c.is_finite() && w.is_finite() && w >= 1.0 => {
                        Window::CenterWidth(c, w)
                    }
                    _ => bail!("--window cw:C,W needs a center C and a width W >= 1, got {s:?}"),
                }
            }
            _ => {
                let parsed = s
                    .strip_prefix("percentile:")
                    .and_then(|r| r.split_once(','))
                    .and_then(|(a, b)| {
                        Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?))
                    });
                match parsed {
                    Some((lo, hi)) if (0.0..hi).contains(&lo) && hi <= 100.0 => Window::Percentile(lo, hi),
                    _ => bail!("--window must be auto, dicom, minmax, none, cw:C,W or percentile:LO,HI (0 <= LO < HI <= 100), got {s:?}"),
                }
            }
        })
    }
}

/// The `--window` spelling, for provenance records.
impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Window::Auto => write!(f, "auto"),
            Window::Dicom => write!(f, "dicom"),
            Window::MinMax => write!(f, "minmax"),
            Window::Percentile(lo, hi) => write!(f, "percentile:{lo},{hi}"),
            Window::CenterWidth(c, w) => write!(f, "cw:{c},{w}"),
            Window::None => write!(f, "none"),
        }
    }
}

/// `values` (any range) to 8 bits, and what was done, in words (for `inspect`).
/// `file_window`: a DICOM (center, width); `eight_bit`: the data is stored in 8 bits and
/// already within 0..255.
pub fn to_u8(
    values: &[f64],
    window: Window,
    file_window: Option<(f64, f64)>,
    eight_bit: bool,
) -> Result<(Vec<u8>, String)> {
    let to8 = |y: f64| y.clamp(0.0, 255.0).round() as u8;
    let linear_map = |c: f64, w: f64| values.iter().map(|&x| to8(linear(x, c, w))).collect();
    Ok(match window {
        Window::Auto | Window::Dicom => match file_window {
            Some((c, w)) if w >= 1.0 => (linear_map(c, w), format!("dicom center {c} width {w}")),
            _ if eight_bit => (values.iter().map(|&x| to8(x)).collect(), "none (8-bit data)".into()),
            _ => min_max(values),
        },
        Window::CenterWidth(c, w) => (linear_map(c, w), format!("cw center {c} width {w}")),
        Window::MinMax => min_max(values),
        Window::Percentile(lo, hi) => {
            let (a, b) = (percentile(values, lo), percentile(values, hi));
            (stretch(values, (a, b)), format!("percentile {lo},{hi}: {a}..{b}"))
        }
        Window::None if eight_bit => (values.iter().map(|&x| to8(x)).collect(), "none (8-bit data)".into()),
        Window::None => bail!("--window none needs 8-bit data; this image has more bits (use minmax, percentile, cw or dicom)"),
    })
}

fn min_max(values: &[f64]) -> (Vec<u8>, String) {
    let (lo, hi) = bounds(values);
    (stretch(values, (lo, hi)), format!("minmax {lo}..{hi}"))
}

/// DICOM's LINEAR VOI function (PS3.3 C.11.2.1.2.1) onto 0..255.
fn linear(x: f64, c: f64, w: f64) -> f64 {
    if x <= c - 0.5 - (w - 1.0) / 2.0 {
        0.0
    } else if x > c - 0.5 + (w - 1.0) / 2.0 {
        255.0
    } else {
        ((x - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0
    }
}

pub fn bounds(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)))
}

/// `lo..hi` onto 0..255, clipping outside; a flat image maps to 0.
fn stretch(values: &[f64], (lo, hi): (f64, f64)) -> Vec<u8> {
    if hi <= lo {
        return vec![0; values.len()];
    }
    values
        .iter()
        .map(|&v| (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}

/// The p-th percentile with linear interpolation between order statistics (numpy's default).
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = p / 100.0 * (sorted.len().saturating_sub(1)) as f64;
    let (i, frac) = (rank.floor() as usize, rank.fract());
    let next = sorted.get(i + 1).copied().unwrap_or(sorted[i]);
    sorted[i] + (next - sorted[i]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!("minmax".parse::<Window>().unwrap(), Window::MinMax);
        assert_eq!(
            "percentile:1,99".parse::<Window>().unwrap(),
            Window::Percentile(1.0, 99.0)
        );
        assert_eq!(
            "cw:-600,1500".parse::<Window>().unwrap(),
            Window::CenterWidth(-600.0, 1500.0)
        );
        for bad in [
            "percentile:99,1",
            "percentile:1",
            "foo",
            "percentile:-1,50",
            "cw:40",
            "cw:40,0",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_map_as_documented() {
        let v = [1000.0, 2000.0, 3000.0, 4000.0, 5000.0];
        assert_eq!(
            to_u8(&v, Window::MinMax, None, false).unwrap().0,
            [0, 64, 128, 191, 255]
        );
        assert_eq!(
            to_u8(&v, Window::Auto, None, false).unwrap().0,
            [0, 64, 128, 191, 255]
        );
        assert_eq!(
            to_u8(&v, Window::Auto, Some((3000.0, 2001.0)), false)
                .unwrap()
                .0,
            [0, 0, 128, 255, 255]
        );
        assert!(to_u8(&v, Window::None, None, false).is_err());
        assert_eq!(
            to_u8(&[7.0, 200.0], Window::None, None, true).unwrap().0,
            [7, 200]
        );
        assert_eq!(
            to_u8(&v, Window::CenterWidth(3000.0, 2001.0), None, false)
                .unwrap()
                .0,
            [0, 0, 128, 255, 255]
        );
        assert_eq!(percentile(&v, 50.0), 3000.0);
        assert_eq!(percentile(&v, 12.5), 1500.0);
    }
}
