#!/usr/bin/env bash
# P4 (training images/s on one GPU, kdlens on wgpu against PyTorch on CUDA) and the Fashion-MNIST
# training recipe, run on a lent GPU machine (BENCHMARKS.md "P4" and "Training recipe against
# PyTorch"). Never in CI. Expects, beside the checkout: .dev/kdlens.xz (a built kdlens, stripped,
# xz-compressed), .dev/fmnist/ (Fashion-MNIST's four IDX files), .gl/ (the Vulkan loader's Debian
# packages); writes its results under $OUT. Each part has a time limit so that the others still
# report: P4 first (alone on the GPU), then kdlens' recipe (one seed) beside PyTorch's (three).
# Prepared here before the call (the machine reaches no network):
#   strip -o /tmp/kdlens $CARGO_TARGET_DIR/debug/kdlens && xz -6 -c /tmp/kdlens > .dev/kdlens.xz
#   mkdir -p .dev/fmnist && cp /usr/share/datasets/fashion-mnist/*.gz .dev/fmnist/
#   .gl/: see the device tool's README (apt-get download libvulkan1 libegl1 …)
# and run with `carry: [".dev", ".gl"]`.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
xz -dc .dev/kdlens.xz > /tmp/kdlens && chmod +x /tmp/kdlens
K=/tmp/kdlens
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
export PYTHONUNBUFFERED=1 BURN_DEVICE=wgpu

timeout "${P4_SECONDS:-200}" python3 pkg-scripts/bench-gpu-training.py --kdlens $K --data .dev/fmnist \
  > "$OUT/p4.json" 2> "$OUT/p4.err"

R=/tmp/recipe
common=(--data .dev/fmnist --grayscale --image-size 64 --batch-size 128 --lr 1e-3 --patience 3
        --replicas 1 --no-vflip --shift 0 --zoom 0 --rotation 0)
recipe_seconds=${RECIPE_SECONDS:-330}
# shellcheck disable=SC2016  # the inner script takes its values as arguments
timeout "$recipe_seconds" bash -c '
  K=$1; R=$2; shift 2
  $K --device wgpu --seed 42 --run-dir $R/teacher train-teacher "$@" --epochs 6 &&
  for point in "kd 0.7" "labels 1"; do
    set -- $point "${@}"
    name=$1 alpha=$2; shift 2
    $K --device wgpu --seed 42 --run-dir $R/$name distill "$@" --epochs 10 \
       --teacher $R/teacher/teacher.kdlens --alpha $alpha --temperature 10
  done' recipe $K $R "${common[@]}" > "$OUT/recipe-kdlens.log" 2>&1 &
timeout "$recipe_seconds" python3 pkg-scripts/recipe-pytorch.py --data .dev/fmnist --device cuda --per-class 0 \
  --test-per-class 0 --size 64 --batch 128 --teacher-epochs 6 --epochs 10 --seeds 42 1 2 \
  --threads 8 > "$OUT/recipe-pytorch.log" 2>&1 &
wait
cat $R/*/log.txt > "$OUT/recipe-kdlens-runs.log" 2>/dev/null
echo finished >> "$OUT/gpu.txt"
