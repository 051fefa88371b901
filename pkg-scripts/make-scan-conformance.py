#!/usr/bin/env python3
"""The reference outcome of every file of the public scan corpora that fetch-test-scans.sh unpacks
into tests/.cache/corpus/ — every DICOM file of pydicom's test files and of pydicom-data, every
NIfTI file of nibabel's test data — as pydicom (with pylibjpeg) and nibabel read it.
crate/kdlens/tests/conformance.rs decodes each with kdlens and compares, without Python.

Run by hand (never in CI), from the repository root:

    bash pkg-scripts/fetch-test-scans.sh
    ~/.cache/torchenv/bin/pip install pydicom==3.0.2 nibabel==5.4.2 numpy pillow \
        'pylibjpeg==2.*' pylibjpeg-libjpeg pylibjpeg-openjpeg
    ~/.cache/torchenv/bin/python pkg-scripts/make-scan-conformance.py

Last run with: Python 3.11.7, pydicom 3.0.2, nibabel 5.4.2, numpy 2.4.6, pylibjpeg 2.1,
pylibjpeg-libjpeg 2.3, pylibjpeg-openjpeg 2.5, pillow 13.0.0.

A file without preamble or file meta, or whose meta names no transfer syntax, is read with
`force=True` and the transfer syntax of the encoding pydicom detects (`read_forced`).

Writes crate/kdlens/tests/fixtures/conformance.json: per file, whether it is an image (a DICOM data
set with Pixel Data, Float Pixel Data or Double Float Pixel Data, or a NIfTI volume), whether the
reference decodes it (and why not), and for a decoded image what kdlens must show by default: the
size, the frame count, the middle frame's value range after the modality LUT (monochrome) and a
strided sample of its values (monochrome: after the modality LUT; colour: RGB as pydicom converts
it, 8 bits; PALETTE COLOR through `apply_color_lut`, 16-bit entries by their high byte). NIfTI: the middle axial slice of the middle volume of the canonical (RAS+) volume,
as nibabel's `as_closest_canonical` gives it, read the radiological way.
"""
import json
import os
import warnings

import nibabel as nib
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

CORPUS = "tests/.cache/corpus"
OUT = "crate/kdlens/tests/fixtures/conformance.json"
# Values sampled per image (strided).
SAMPLES = 64
PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def sample(values):
    flat = np.asarray(values, dtype=np.float64).ravel()
    stride = max(1, len(flat) // SAMPLES)
    # Values that are not finite (NaN in float data) are kept as null: their place is compared.
    return stride, [round(float(v), 4) if np.isfinite(v) else None for v in flat[::stride][:SAMPLES]]


def short(error):
    return f"{type(error).__name__}: {error}".splitlines()[0][:160]


def read_forced(path):
    """The data set in `path`, read as a pydicom user reads a file without preamble or file meta
    (old ACR-NEMA-style exports) or whose meta names no transfer syntax: with `force=True`, and
    the transfer syntax set from the encoding pydicom found."""
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta and ds.original_encoding[0] is not None:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit
            else ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    return ds


def dicom_entry(path):
    entry = {"file": os.path.relpath(path, CORPUS)}
    try:
        ds = read_forced(path)
        if len(ds) == 0:
            raise InvalidDicomError("no data elements")
    except Exception as error:  # noqa: BLE001 - every failure is an outcome
        return entry | {"image": False, "reason": "unreadable: " + short(error)}
    if not any(tag in ds for tag in PIXEL_TAGS):
        return entry | {"image": False, "reason": f"no pixel data ({ds.get('Modality', '?')})"}
    try:
        pixels = ds.pixel_array
    except Exception as error:  # noqa: BLE001
        return entry | {"image": True, "decoded": False, "reason": short(error)}
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    frame = frames // 2
    if frames > 1:
        pixels = pixels[frame]
    samples = int(getattr(ds, "SamplesPerPixel", 1))
    entry |= {"image": True, "decoded": True, "frames": frames, "frame": frame,
              "size": [int(ds.Rows), int(ds.Columns)], "samples": samples,
              "photometric": str(ds.PhotometricInterpretation),
              "transfer_syntax": str(ds.file_meta.TransferSyntaxUID)}
    if entry["photometric"] == "PALETTE COLOR":
        # A viewer shows the palette's colours (16-bit entries by their high byte).
        rgb = apply_color_lut(pixels, ds).astype(np.float64)
        if int(ds.RedPaletteColorLookupTableDescriptor[2]) == 16:
            rgb = np.floor(rgb / 256)
        stride, values = sample(rgb)
        return entry | {"kind": "rgb", "stride": stride, "values": values}
    if samples == 3:
        rgb = pixels.astype(np.float64)
        if int(ds.BitsAllocated) > 8:
            rgb = np.floor(rgb / 2 ** (int(ds.BitsAllocated) - 8))
        stride, values = sample(rgb)
        return entry | {"kind": "rgb", "stride": stride, "values": values}
    modality = apply_modality_lut(pixels, ds).astype(np.float64)
    slope, intercept = functional_group_rescale(ds, frame)
    if slope is not None:
        modality = modality * slope + intercept
    stride, values = sample(modality)
    return entry | {"kind": "gray", "stride": stride, "values": values,
                    "value_range": [float(np.nanmin(modality)), float(np.nanmax(modality))]}


def functional_group_rescale(ds, frame):
    """The Rescale Slope and Intercept of an enhanced multi-frame file's functional groups (PS3.3
    C.7.6.16.2.9; the frame's own group first, else the shared one), which pydicom's
    `apply_modality_lut` does not look into; (None, None) when the file states its own rescale or
    has none there."""
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        return None, None
    groups = []
    if "PerFrameFunctionalGroupsSequence" in ds and frame < len(ds.PerFrameFunctionalGroupsSequence):
        groups.append(ds.PerFrameFunctionalGroupsSequence[frame])
    if "SharedFunctionalGroupsSequence" in ds:
        groups.extend(ds.SharedFunctionalGroupsSequence[:1])
    for group in groups:
        if "PixelValueTransformationSequence" in group:
            item = group.PixelValueTransformationSequence[0]
            return float(item.get("RescaleSlope", 1.0)), float(item.get("RescaleIntercept", 0.0))
    return None, None


def nifti_entry(path):
    entry = {"file": os.path.relpath(path, CORPUS)}
    try:
        img = nib.load(path)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            return entry | {"image": False, "reason": f"not NIfTI ({type(img).__name__})"}
        data = nib.as_closest_canonical(img).get_fdata()
    except Exception as error:  # noqa: BLE001
        return entry | {"image": True, "decoded": False, "reason": short(error)}
    if data.ndim < 2 or data.ndim > 4 and any(d != 1 for d in data.shape[4:]):
        return entry | {"image": True, "decoded": False, "reason": f"{data.ndim}-D"}
    while data.ndim < 3:
        data = data[..., None]
    volumes = data.shape[3] if data.ndim >= 4 else 1
    volume = volumes // 2
    if data.ndim >= 4:
        data = data.reshape(data.shape[:4])[..., volume]
    k = data.shape[2] // 2
    view = data[::-1, ::-1, k].T
    stride, values = sample(view)
    return entry | {"image": True, "decoded": True, "frames": volumes, "frame": volume,
                    "size": list(view.shape), "kind": "gray", "stride": stride, "values": values,
                    "value_range": [float(np.nanmin(data)), float(np.nanmax(data))]}


def main():
    warnings.simplefilter("ignore")
    entries = []
    for root, _, files in sorted(os.walk(CORPUS)):
        for name in sorted(files):
            path = os.path.join(root, name)
            if name == "complete":  # fetch-test-scans.sh's marker
                continue
            if name.endswith((".nii", ".nii.gz")):
                entries.append(nifti_entry(path))
            else:
                entries.append(dicom_entry(path))
    versions = {"pydicom": pydicom.__version__, "nibabel": nib.__version__,
                "numpy": np.__version__}
    with open(OUT, "w") as f:
        json.dump({"files": entries, "versions": versions}, f, separators=(",", ":"),
                  allow_nan=False)
        f.write("\n")
    decoded = sum(1 for e in entries if e.get("decoded"))
    print(f"wrote {OUT}: {len(entries)} files, {decoded} decoded by the reference")


if __name__ == "__main__":
    main()
