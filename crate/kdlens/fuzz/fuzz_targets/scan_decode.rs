//! Fuzzes DICOM and NIfTI decoding with its options (see `harness.rs`).
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)] // each target uses one part of the shared harness
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::scan_decode(data));
