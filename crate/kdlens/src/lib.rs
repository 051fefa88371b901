//! # kdlens — transparent medical image classifiers through knowledge distillation
//!
//! The core of kdlens, a re-implementation of *A Knowledge Distillation-Based Approach to Enhance
//! Transparency of Classifier Models* (Jiang, Zhao, Wu, Chaddad; AAAI-25, "KD-FMV"). It holds all
//! of the science and nothing else: the models ([`model`]), the explanation operations
//! ([`explain`]), the distillation loss ([`distill`]), classification metrics and model cost
//! ([`metrics`]), whether explanations can be trusted ([`trust`]: faithfulness, teacher–student
//! agreement, sanity checks, out-of-distribution inputs), the one image preprocessing path
//! ([`image`]) and the exported model format ([`bundle`]).
//!
//! Every function takes a burn [`Device`](burn::tensor::Device) chosen at run time — `flex` on
//! the CPU, `wgpu` on a GPU natively or WebGPU in the browser — and the crate compiles both for
//! native targets and for `wasm32-unknown-unknown`. Read-backs from the device go through
//! `async` functions so that the browser, where a synchronous read is impossible, uses the same
//! code; native callers block on them with [`block_on`].
//!
//! Tensor shapes are written `[batch, channels, height, width]` throughout.

#![warn(missing_docs)]

pub mod bundle;
pub mod conv;
pub mod distill;
pub mod error;
pub mod explain;
mod flex_tensor;
pub mod image;
pub mod metrics;
pub mod model;
pub mod norm;
pub mod pool;
mod readback;
pub mod trust;

pub use error::{Error, Result};
/// The vector unit kdlens' CPU kernels run on (`KDLENS_SIMD` forces a lower one).
pub use kdlens_kernels::simd;
#[cfg(not(target_arch = "wasm32"))]
pub use readback::block_on;
pub use readback::read_f32;
