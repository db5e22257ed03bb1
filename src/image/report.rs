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
        let (lo, hi) = super::window::bounds(before);
        self.range_before = if before.is_empty() {
            [0.0; 2]
        } else {
            [lo, hi]
        };
        let counts = histogram(after);
        self.range_after = byte_range(&counts);
        self.note_flat_window(&counts, after.len(), lo < hi);
    }

    /// As `set_ranges` for 8-bit samples used as they are (before and after are the same
    /// bytes): one pass over the bytes, no float copy of the image.
    pub fn set_ranges_8bit(&mut self, data: &[u8]) {
        let counts = histogram(data);
        let [lo, hi] = byte_range(&counts);
        self.range_before = [lo.into(), hi.into()];
        self.range_after = [lo, hi];
        self.note_flat_window(&counts, data.len(), lo < hi);
    }

    /// Notes a window that left the `n` bytes counted in `counts` (nearly) constant where the
    /// samples before it varied.
    fn note_flat_window(&mut self, counts: &[usize; 256], n: usize, varied_before: bool) {
        if n == 0 || !varied_before {
            return; // constant already: not the window's doing
        }
        let (value, &most) = counts
            .iter()
            .enumerate()
            .max_by_key(|&(_, c)| *c)
            .unwrap_or((0, &0));
        let share = most as f64 / n as f64;
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

/// The smallest and largest byte counted (`[0, 0]` for none).
fn byte_range(counts: &[usize; 256]) -> [u8; 2] {
    match (
        counts.iter().position(|&c| c > 0),
        counts.iter().rposition(|&c| c > 0),
    ) {
        (Some(lo), Some(hi)) => [lo as u8, hi as u8],
        _ => [0; 2],
    }
}

/// How many of `data` take each byte value. Four interleaved tables, so that runs of one value
/// (a radiograph's black border) do not wait on one counter.
fn histogram(data: &[u8]) -> [usize; 256] {
    let mut t = [[0u32; 256]; 4];
    let mut counts = [0usize; 256];
    // u32 tables, flushed before they could overflow.
    for block in data.chunks(1 << 30) {
        let mut quads = block.chunks_exact(4);
        for q in &mut quads {
            t[0][q[0] as usize] += 1;
            t[1][q[1] as usize] += 1;
            t[2][q[2] as usize] += 1;
            t[3][q[3] as usize] += 1;
        }
        for &v in quads.remainder() {
            t[0][v as usize] += 1;
        }
        for (i, c) in counts.iter_mut().enumerate() {
            *c += t.iter().map(|t| t[i] as usize).sum::<usize>();
        }
        t = [[0u32; 256]; 4];
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bit_ranges_from_one_histogram_equal_the_float_path() {
        let mut rng = crate::eval::metrics::Rng::new(0x853c_49e6_748f_ea9b);
        let mut byte = move || (rng.next_u64() >> 40) as u8;
        let varied: Vec<u8> = (0..100_003).map(|_| byte()).collect();
        // 99.5% one value: the "nearly constant" note; all one value: no note (not the
        // window's doing); a single outlier; nothing.
        let nearly: Vec<u8> = (0..10_000)
            .map(|i| if i % 200 == 0 { 9 } else { 40 })
            .collect();
        let constant = vec![77u8; 4097];
        let cases = [
            (varied, 0),
            (nearly, 1),
            (constant, 0),
            (vec![255u8, 0], 0),
            (vec![], 0),
        ];
        for (data, notes) in cases {
            let base = Report {
                window: "none (8-bit data)".into(),
                ..Report::default()
            };
            let (mut fast, mut float) = (base.clone(), base);
            fast.set_ranges_8bit(&data);
            let widened: Vec<f64> = data.iter().map(|&v| f64::from(v)).collect();
            float.set_ranges(&widened, &data);
            assert_eq!(fast, float, "{} values", data.len());
            assert_eq!(fast.notes.len(), notes, "{:?}", fast.notes);
            if notes == 1 {
                let want = "the window (none (8-bit data)) leaves the image nearly constant \
                            (99.5% of values are 40); check --window";
                assert_eq!(fast.notes[0], want);
            }
        }
    }

    #[test]
    fn a_window_that_flattens_the_image_is_noted() {
        let mut r = Report::default();
        r.set_ranges(&[0.0, 1000.0, 2000.0, 3000.0], &[255, 255, 255, 255]);
        assert_eq!(r.range_after, [255, 255]);
        assert!(
            r.notes[0].contains("constant (every value 255)"),
            "{:?}",
            r.notes
        );
    }
}
