#!/usr/bin/env bash
# The demo's recipe trained and audited with several seeds, and the audits pooled: an answer to
# "does the distilled student explain like its teacher?" that does not rest on one training run.
#
#   bash pkg-scripts/demo-seeds.sh [SEED...]      (default seeds: 1 2 3)
#
# Each seed is a whole `kdlens demo` (release build) in runs/demo-seed-<S>/; an existing run whose
# audit is complete is kept, so an interrupted series resumes. Then `kdlens pool-audits` writes
# runs/demo-seeds/pooled.md and pooled.json: every comparison pooled over all runs' images, beside
# each run's own difference. Long: one demo per seed (about 40 minutes each on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kdlens-target}"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)

cargo build --release -p kdlens-cli
kdlens="$CARGO_TARGET_DIR/release/kdlens"
runs=()
for seed in "${seeds[@]}"; do
  run="runs/demo-seed-$seed"
  if [ ! -f "$run/audit/records.json" ]; then
    rm -rf "$run"
    echo "=== demo, seed $seed: $run"
    "$kdlens" --run-dir "$run" --seed "$seed" demo
  fi
  runs+=("$run")
done
"$kdlens" --run-dir runs/demo-seeds pool-audits "${runs[@]}"
echo "pooled: runs/demo-seeds/pooled.md"
