#!/usr/bin/env bash
# The test command: formatting, lints (native and wasm32), Rust tests (unit, parity with
# PyTorch fixtures, CLI pipeline), the wasm build, and the browser tests in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kdlens-target}"

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt"
cargo fmt --all --check
step "clippy (native)"
cargo clippy --workspace --all-targets -- -D warnings
step "clippy (wasm32: core with its scan decoders, and web glue)"
cargo clippy --target wasm32-unknown-unknown -p kdlens -p kdlens-web --features kdlens/scan -- -D warnings
step "CPU kernels on aarch64 (NEON and scalar paths), cross-built and run under qemu"
bash pkg-scripts/test-aarch64.sh
step "real MRI test images, DICOM and NIfTI test files"
bash pkg-scripts/fetch-test-images.sh
bash pkg-scripts/fetch-test-scans.sh
step "cargo test"
cargo test --workspace
step "web build"
bash pkg-scripts/build-web.sh
step "browser tests"
# The page's patient-data test searches its exports for the made-up values of these DICOM files.
KDLENS_PATIENT_DIR="$PWD/tests/.cache/patient" cargo test -q -p kdlens-cli --test patient_data \
  -- --ignored --exact write_patient_files
(cd tests && node --test --test-concurrency=1)
echo "all tests passed"
