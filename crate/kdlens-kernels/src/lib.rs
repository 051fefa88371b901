//! # kdlens-kernels — kdlens' CPU kernels
//!
//! The convolution kdlens' models run on the CPU (forward, input gradient, weight gradient;
//! [`conv`]), the batch norm + ReLU ([`norm`]) and pooling ([`pool`]) around it, on plain `f32` slices in `[batch, channels, height, width]`
//! layout. Each has a path per vector unit — AVX-512, AVX2 + FMA, NEON, WebAssembly's simd128
//! and a scalar reference ([`simd::Path`]) — chosen once per process ([`simd::active`]) and
//! forced lower with `KDLENS_SIMD`. The core crate (`kdlens`) calls them from its burn backend
//! extensions; this crate has no burn, so it builds and tests for another architecture quickly.

#![warn(missing_docs)]

pub mod conv;
pub mod maximum;
pub mod norm;
mod parallel;
pub mod pool;
pub mod simd;

pub use parallel::for_each_chunk;
