#!/usr/bin/env bash
# Fuzzes the places untrusted bytes enter kdlens: the model-bundle reader, image decoding plus
# preprocessing, and DICOM / NIfTI decoding (cargo-fuzz, nightly, libFuzzer). Not part of CI (long); the inputs that ever
# crashed are replayed by `cargo test` (crate/kdlens/tests/fuzz_regressions.rs).
#
#   bash pkg-scripts/fuzz.sh [TARGET...]     TARGET: bundle_reader, decode_preprocess, scan_decode
#                                            (default all three)
#   KDLENS_FUZZ_SECONDS=1800 KDLENS_FUZZ_RUNS=1000000   stop at whichever comes first
#   KDLENS_FUZZ_MAX_LEN=32768                          the longest input (default: the longest seed)
#
# A crash is saved under crate/kdlens/fuzz/artifacts/<target>/; after fixing it, copy the file to
# crate/kdlens/fuzz/regressions/<target>/ so that it stays a test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kdlens-target}"
fuzz_target_dir="${KDLENS_FUZZ_TARGET_DIR:-$HOME/.cache/kdlens-fuzz-target}"
corpus="${KDLENS_FUZZ_CORPUS:-$HOME/.cache/kdlens-fuzz-corpus}"
seconds="${KDLENS_FUZZ_SECONDS:-1800}"
runs="${KDLENS_FUZZ_RUNS:-1000000}"
# Longest input the fuzzer makes (0: the longest seed's length). Seeds longer are cut to it; the
# scan decoder runs about five times faster from 32 KB inputs than from whole images.
max_len="${KDLENS_FUZZ_MAX_LEN:-0}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bundle_reader decode_preprocess scan_decode)

command -v cargo-fuzz >/dev/null || cargo +nightly install cargo-fuzz --locked
# --workspace, as test.sh builds: `-p kdlens` alone would build burn again for another feature set.
KDLENS_FUZZ_SEEDS="$corpus" cargo test -q --workspace --test fuzz_regressions \
  -- --ignored write_fuzz_seeds
# The scan decoder starts from the real files of the conformance corpora (pydicom, pydicom-data,
# nibabel) up to 200 KB each: every transfer syntax and pixel layout they hold is a seed. The
# harness reads its options from an input's first byte, so each seed is the file after a 0 byte
# (the default options).
if [[ " ${targets[*]} " == *" scan_decode "* ]]; then
  bash pkg-scripts/fetch-test-scans.sh
  mkdir -p "$corpus/scan_decode"
  find tests/.cache/corpus -type f -size -200k ! -name complete -print0 |
    while IFS= read -r -d '' file; do
      name=${file#tests/.cache/corpus/}
      { printf '\0'; cat "$file"; } >"$corpus/scan_decode/seed-${name//\//-}"
    done
fi

for target in "${targets[@]}"; do
  mkdir -p "$corpus/$target"
  echo "=== fuzzing $target: up to $runs runs or $seconds s"
  # Safe Rust needs no address sanitiser; without it the fuzzer runs several times faster.
  # libFuzzer's default 2 GiB of RSS is a failure on purpose: dicom-rs 0.10.1 allocates and zeroes
  # an element's stated length before reading it, so kdlens checks every length dicom-rs will act
  # on first (crate/kdlens/src/image/scan/dicom_lengths.rs); an input that still makes it
  # allocate gigabytes is a bug to stop on.
  (cd crate/kdlens && cargo +nightly fuzz run --sanitizer none --target-dir "$fuzz_target_dir" \
    "$target" "$corpus/$target" fuzz/regressions/"$target" \
    -- -max_total_time="$seconds" -runs="$runs" -max_len="$max_len" -rss_limit_mb=2048 -timeout=20 \
    -print_final_stats=1)
done
