//! Labelled image sets: where they come from, how they are split, decoded and batched.

pub mod augment;
mod cache;
mod folders;
mod idx;
mod splits;

pub use cache::ImageCache;
pub use splits::{DataSource, ImageRef, Sample, SplitOptions, Splits, stratified};
