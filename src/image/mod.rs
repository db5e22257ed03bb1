//! Images: file -> `decode` (8-bit pixels) -> `preprocess` (Pillow-exact resize, crop,
//! normalise) -> the [3, S, S] tensor the vision tower takes.

pub mod decode;
mod dicom;
mod jpeg;
pub mod preprocess;
pub mod report;
pub mod resample;
pub mod window;

pub use decode::{decode_bytes, decode_bytes_with, decode_file, decode_file_with, Decoded};
pub use preprocess::{preprocess, preprocess_into};
pub use report::{DecodeOptions, Report};
pub use resample::Image8;
pub use window::Window;
