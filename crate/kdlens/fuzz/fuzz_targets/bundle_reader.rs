//! Fuzzes `Bundle::from_bytes` and `Bundle::load_model` (see `harness.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::bundle_reader(data));
