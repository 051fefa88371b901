//! The one preprocessing path from pixels to a model input, shared by the CLI and the browser so
//! that both feed the model exactly the same numbers.
//!
//! RGBA pixels of any size → alpha composited over black → grayscale (if the model was trained
//! on grayscale) → bilinear resize to the model's input → `(v / 255 − mean) / std` per channel →
//! `[1, 3, height, width]` tensor.

mod blur;
#[cfg(feature = "decode")]
pub mod decode;
mod preprocess;
mod resize;
pub mod scan;

pub use blur::gaussian_blur;
#[cfg(feature = "decode")]
pub use decode::{Decoded, decode_bytes, decode_bytes_with, decode_file, decode_file_with};
pub use preprocess::{ColorMode, Normalization, Preprocessing, RgbaImage};
pub use resize::resize_plane;
