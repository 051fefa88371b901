//! Fuzzes `Bundle::from_bytes` and `Bundle::load_model` (see `harness.rs`).
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)] // each target uses one half of the shared harness
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::bundle_reader(data));
