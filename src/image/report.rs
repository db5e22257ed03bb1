//! Decode (report): what decoding found in a file and what it did to the pixels — the record
//! `whyxray inspect` prints, and the notes (multi-frame, say) a batch run warns with.

use serde::Serialize;

/// How a file is to be decoded: the `--window`, `--frame` and `--max-megapixels` options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeOptions {
    pub window: super::Window,
    /// Which frame of a multi-frame DICOM (0-based); `None`: the first, with a note.
    pub frame: Option<u32>,
    /// Files whose header declares more pixels than this are refused before any allocation.
    pub max_pixels: u64,
}

/// 20,000 x 20,000: far above any radiograph, far below what would take the machine's memory.
pub const DEFAULT_MAX_PIXELS: u64 = 400_000_000;

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            window: super::Window::Auto,
            frame: None,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

/// The share of pixels at one value above which a windowed image counts as nearly constant
/// (radiographs with wide black borders stay far below it).
const NEARLY_FLAT: f64 = 0.99;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// PNG, JPEG, TIFF or DICOM.
    pub format: &'static str,
    /// DICOM only: the transfer syntax UID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_syntax: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    /// DICOM's photometric interpretation, or the colour type of other images (L, LA, RGB, ...).
    pub photometric: String,
    /// Bits per stored sample (DICOM's BitsStored; 8 or 16 otherwise).
    pub bits_stored: u16,
    /// DICOM: samples stored as signed integers (PixelRepresentation 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed: Option<bool>,
    /// DICOM's modality LUT as [slope, intercept], where the file has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescale: Option<[f64; 2]>,
    /// How samples became 8 bits.
    pub window: String,
    pub frames: u32,
    /// The frame decoded (0-based).
    pub frame: u32,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    /// Smallest and largest sample before windowing (after the modality LUT).
    pub range_before: [f64; 2],
    /// Smallest and largest 8-bit value handed to preprocessing.
    pub range_after: [u8; 2],
    /// MONOCHROME1: inverted so that bone is bright.
    pub inverted: bool,
    /// EXIF orientation applied, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orientation: Option<String>,
    /// Things a user should know (a batch run prints them as warnings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Report {
    /// Fills in the ranges from the samples before and the bytes after windowing, and notes a
    /// window that flattened a varied image (a CT window on a radiograph, say): the model
    /// would score a blank picture without a word.
    pub fn set_ranges(&mut self, before: &[f64], after: &[u8]) {
        self.note_flat_window(before, after);
        let (lo, hi) = super::window::bounds(before);
        self.range_before = if before.is_empty() {
            [0.0; 2]
        } else {
            [lo, hi]
        };
        let (a, b) = after
            .iter()
            .fold((u8::MAX, u8::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        self.range_after = if after.is_empty() { [0; 2] } else { [a, b] };
    }

    fn note_flat_window(&mut self, before: &[f64], after: &[u8]) {
        let (lo, hi) = super::window::bounds(before);
        if after.is_empty() || lo >= hi {
            return; // constant already: not the window's doing
        }
        let mut counts = [0usize; 256];
        after.iter().for_each(|&v| counts[v as usize] += 1);
        let (value, &most) = counts
            .iter()
            .enumerate()
            .max_by_key(|&(_, c)| *c)
            .unwrap_or((0, &0));
        let share = most as f64 / after.len() as f64;
        if share >= 1.0 {
            self.notes.push(format!(
                "the window ({}) leaves the image constant (every value {value}); the model sees \
                 a blank picture: check --window",
                self.window
            ));
        } else if share >= NEARLY_FLAT {
            self.notes.push(format!(
                "the window ({}) leaves the image nearly constant ({:.1}% of values are {value}); \
                 check --window",
                self.window,
                share * 100.0
            ));
        }
    }

    /// One human-readable line (`inspect`'s default format).
    pub fn line(&self) -> String {
        let mut parts = vec![self.format.to_string()];
        if let Some(ts) = &self.transfer_syntax {
            parts.push(format!("ts {ts}"));
        }
        if let Some(m) = &self.modality {
            parts.push(m.clone());
        }
        parts.push(format!(
            "{} {}-bit{}",
            self.photometric,
            self.bits_stored,
            if self.signed == Some(true) {
                " signed"
            } else {
                ""
            }
        ));
        parts.push(format!("{}x{}x{}", self.width, self.height, self.channels));
        if self.frames > 1 {
            parts.push(format!("frame {}/{}", self.frame, self.frames));
        }
        if let Some([s, i]) = self.rescale {
            parts.push(format!("rescale {s}*v{i:+}"));
        }
        parts.push(format!(
            "values {}..{}",
            self.range_before[0], self.range_before[1]
        ));
        parts.push(format!("window {}", self.window));
        if self.inverted {
            parts.push("inverted (MONOCHROME1)".into());
        }
        parts.push(format!(
            "-> {}..{}",
            self.range_after[0], self.range_after[1]
        ));
        if let Some(o) = &self.orientation {
            parts.push(format!("orientation {o}"));
        }
        parts.extend(self.notes.iter().map(|n| format!("note: {n}")));
        parts.join("; ")
    }
}
