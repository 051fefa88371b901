//! The exported model: one file holding the weights and everything needed to use them
//! (classes, input size, normalisation, architecture, metrics, training configuration,
//! hashes). The browser loads it without being rebuilt; the CLI uses the same format for every
//! model it saves.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `KDLENS\0\n` |
//! | 4 | format version (`1`) |
//! | 4 | manifest length `M` |
//! | `M` | manifest, UTF-8 JSON ([`Manifest`]) |
//! | 8 | weights length `W` |
//! | `W` | weights, burnpack (f32 or f16) |
//! | 32 | SHA-256 of everything above |
//!
//! Reading checks every field and the checksum before anything is built, so a truncated,
//! corrupted or foreign file is rejected with a message saying what is wrong.

mod background;
mod format;
mod manifest;
mod weights;

pub use background::{
    MAX_BACKGROUND_BYTES, MAX_BACKGROUND_IMAGES, ShapBackground, default_background_images,
};
pub use format::{Bundle, FORMAT_VERSION, MAGIC, frame};
pub use manifest::{MAX_CLASSES, MAX_INPUT_SIDE, MAX_PARAMS, Manifest, Provenance, WeightsInfo};
pub use weights::WeightPrecision;
