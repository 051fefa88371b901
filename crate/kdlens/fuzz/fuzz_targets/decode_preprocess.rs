//! Fuzzes image decoding and preprocessing (see `harness.rs`).
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)] // each target uses one half of the shared harness
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::decode_preprocess(data));
