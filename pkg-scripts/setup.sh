#!/usr/bin/env bash
# Installs what kdlens needs on a fresh Debian/Ubuntu machine: Fashion-MNIST, Chromium (browser
# tests), Mesa's Vulkan drivers (GPU tests on lavapipe), the wasm32 target, the aarch64 target
# with its cross linker and qemu (the kernels' NEON path is tested under emulation), the
# wasm-bindgen CLI matching the crate, and the browser-test packages. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(dataset-fashion-mnist chromium mesa-vulkan-drivers pkg-config unzip python3 python3-pip
  qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

rustup target add wasm32-unknown-unknown aarch64-unknown-linux-gnu

# The wasm-bindgen CLI must match the wasm-bindgen crate version pinned in Cargo.toml.
want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' Cargo.toml)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (found: ${have:-none})"
  cargo install wasm-bindgen-cli --version "$want"
fi

(cd tests && npm ci --no-audit --no-fund)
echo "setup complete"
