#!/usr/bin/env bash
# The test command: setup.sh's decisions and the GitHub workflows, formatting, lints (native and
# wasm32), Rust tests (unit, parity with PyTorch fixtures, CLI pipeline), the wasm build, and the
# browser tests in headless Chromium. Needs what pkg-scripts/setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kdlens-target}"
source pkg-scripts/tools.sh
kdlens_tools_on_path

step() { printf '\n=== %s\n' "$*"; }

# What the last steps need, checked before the long build rather than after it.
CHROMIUM=$(kdlens_chromium)
export CHROMIUM
node_have=$(node --version 2>/dev/null || true)
if ! kdlens_version_at_least "${node_have:-0}" "$KDLENS_NODE_MIN" || ! command -v npm >/dev/null ||
  [ ! -d tests/node_modules ] || ! command -v zizmor >/dev/null || ! command -v shellcheck >/dev/null; then
  echo "the tests need Node >= $KDLENS_NODE_MIN with npm (found: ${node_have:-none}), the npm" \
    "packages in tests/node_modules, zizmor and shellcheck: run pkg-scripts/setup.sh" >&2
  exit 1
fi

step "setup.sh's decisions on made-up fresh Debian 12 and Ubuntu 24.04 systems"
bash pkg-scripts/test-setup.sh
step "shell scripts (shellcheck)"
shellcheck -x .ci/run pkg-scripts/*.sh
step "GitHub workflows (actionlint; zizmor: least privilege, credentials, pinned actions)"
node tests/lint-workflows.mjs
zizmor --offline --no-progress .github/workflows
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
