#!/usr/bin/env bash
# Fetches real DICOM and NIfTI test files from the PyPI wheels that ship them — pydicom 3.0.2 and
# pydicom-data 1.0.0 (MIT) and nibabel 5.4.2 (MIT) — into tests/.cache/scans/ (not committed).
# Exits 0 with a message if the registry cannot be reached; the tests that need the files then
# say they skip.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
dest=tests/.cache/scans
pydicom_files=(CT_small MR_small MR_small_bigendian MR_small_implicit MR_small_expb MR_small_RLE
  JPGExtended SC_rgb_jpeg_dcmtk image_dfl SC_rgb_small_odd SC_ybr_full_422_uncompressed SC_rgb_rle_2frame
  MR_small_jp2klossless MR_small_jpeg_ls_lossless 693_J2KI JPEG2000 examples_jpeg2k
  SC_rgb_jls_lossy_line)
data_files=(RG1_UNCR vlut_04 emri_small JPEG-LL explicit_VR-UN mlut_18)
nibabel_files=(anatomical.nii example4d.nii.gz standard.nii.gz example_nifti2.nii.gz)
wanted=$(( ${#pydicom_files[@]} + ${#data_files[@]} + ${#nibabel_files[@]} ))
# The whole corpora (every DICOM file of pydicom's test files and of pydicom-data, every NIfTI
# file of nibabel's test data) for the conformance test, crate/kdlens/tests/conformance.rs.
corpus=tests/.cache/corpus
if [ "$(find "$dest" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" -ge "$wanted" ] &&
  [ -f "$corpus/complete" ]; then exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" \
    pydicom==3.0.2 pydicom-data==1.0.0 nibabel==5.4.2; then
  echo "could not download pydicom / pydicom-data / nibabel from PyPI; scan tests will skip"
  exit 0
fi
mkdir -p "$dest" "$tmp/x"
for f in "${pydicom_files[@]}"; do unzip -q -o "$tmp"/pydicom-3*.whl "pydicom/data/test_files/$f.dcm" -d "$tmp/x"; done
for f in "${data_files[@]}"; do unzip -q -o "$tmp"/pydicom_data-*.whl "data_store/data/$f.dcm" -d "$tmp/x"; done
for f in "${nibabel_files[@]}"; do unzip -q -o "$tmp"/nibabel-*.whl "nibabel/tests/data/$f" -d "$tmp/x"; done
find "$tmp/x" -type f -exec cp {} "$dest/" \;
(
  set -e
  rm -rf "$corpus"
  mkdir -p "$tmp/c" "$corpus/pydicom" "$corpus/pydicom-data" "$corpus/nibabel"
  unzip -q -o "$tmp"/pydicom-3*.whl 'pydicom/data/test_files/*' \
    -x '*.txt' '*.icc' '*.dump' '*.json' '*.gz' -d "$tmp/c"
  unzip -q -o "$tmp"/pydicom_data-*.whl 'data_store/data/*.dcm' -d "$tmp/c"
  unzip -q -o "$tmp"/nibabel-*.whl 'nibabel/tests/data/*.nii' 'nibabel/tests/data/*.nii.gz' -d "$tmp/c"
  cp -r "$tmp/c/pydicom/data/test_files/." "$corpus/pydicom/"
  cp "$tmp/c/data_store/data/"*.dcm "$corpus/pydicom-data/"
  cp "$tmp/c/nibabel/tests/data/"*.nii* "$corpus/nibabel/"
  touch "$corpus/complete"
) || { echo "could not unpack the scan corpora into $corpus" >&2; exit 1; }
echo "unpacked $(find "$corpus" -type f ! -name complete | wc -l) corpus files into $corpus"
echo "fetched $(find "$dest" -mindepth 1 -maxdepth 1 | wc -l) scan files into $dest"
