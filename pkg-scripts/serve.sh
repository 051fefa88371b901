#!/usr/bin/env bash
# Serves www/ on http://127.0.0.1:${PORT:-8000}/ (static files only; the page needs no server
# logic). Build the wasm first: bash pkg-scripts/build-web.sh
set -euo pipefail
cd "$(dirname "$0")/../www"
[ -f pkg/kdlens_web_bg.wasm ] || { echo "www/pkg/ is missing: run bash pkg-scripts/build-web.sh first" >&2; exit 1; }
echo "kdlens page: http://127.0.0.1:${PORT:-8000}/"
exec python3 -m http.server "${PORT:-8000}" --bind 127.0.0.1
