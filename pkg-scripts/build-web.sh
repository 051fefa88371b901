#!/usr/bin/env bash
# Builds the browser explainer: the kdlens-web crate for wasm32, then wasm-bindgen's JavaScript
# glue into www/pkg/. Optional: KDLENS_WASM_OPT=1 shrinks the wasm with binaryen's wasm-opt from
# npm (slow). Prints the page's payload (raw and gzip).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kdlens-target}"

cargo build --profile web --target wasm32-unknown-unknown -p kdlens-web
rm -rf www/pkg
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir www/pkg \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/web/kdlens_web.wasm"

if [ "${KDLENS_WASM_OPT:-0}" = "1" ]; then
  npx --prefix tests wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    -o www/pkg/kdlens_web_bg.wasm www/pkg/kdlens_web_bg.wasm
fi

echo "payload of www/ (bytes, raw and gzip -9):"
total_raw=0; total_gz=0
for f in www/index.html www/app.js www/audit.js www/batch.js www/chart.js www/worker.js www/sw.js www/style.css www/pkg/kdlens_web.js www/pkg/kdlens_web_bg.wasm www/model/model.kdlens; do
  [ -f "$f" ] || continue
  raw=$(stat -c %s "$f"); gz=$(gzip -9 -c "$f" | wc -c)
  total_raw=$((total_raw + raw)); total_gz=$((total_gz + gz))
  printf '  %-32s %10d %10d\n' "$f" "$raw" "$gz"
done
printf '  %-32s %10d %10d\n' total "$total_raw" "$total_gz"
