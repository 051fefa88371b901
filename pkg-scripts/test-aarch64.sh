#!/usr/bin/env bash
# Tests kdlens-kernels (the CPU kernels, no burn) for aarch64 on this x86-64 machine: cross-built
# with Debian's gcc-aarch64-linux-gnu and run under qemu-aarch64 (.cargo/config.toml names both),
# so the NEON path is tested against the definition and against the scalar path on every run.
# Fails, naming what is missing, where it cannot run: it never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu ||
  missing+=("the Rust standard library for aarch64 (rustup target add aarch64-unknown-linux-gnu)")
command -v aarch64-linux-gnu-gcc >/dev/null ||
  missing+=("the cross linker aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)")
command -v qemu-aarch64 >/dev/null ||
  missing+=("qemu-aarch64 (apt-get install qemu-user)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'cannot test the aarch64 kernels; missing:\n' >&2
  printf '  - %s\n' "${missing[@]}" >&2
  printf 'bash pkg-scripts/setup.sh installs all of them.\n' >&2
  exit 1
fi

cargo clippy -p kdlens-kernels --all-targets --target aarch64-unknown-linux-gnu -- -D warnings
cargo test -p kdlens-kernels --target aarch64-unknown-linux-gnu
