#!/usr/bin/env python3
"""Reference values for kdlens's DICOM and NIfTI decoding, computed with pydicom and nibabel on
the real test files that fetch-test-scans.sh brings into tests/.cache/scans/.

Run by hand (never in CI), from the repository root:

    bash pkg-scripts/fetch-test-scans.sh
    ~/.cache/torchenv/bin/pip install pydicom==3.0.2 nibabel==5.4.2 numpy
    ~/.cache/torchenv/bin/python pkg-scripts/make-scan-fixtures.py

Last run with: Python 3.11.7, pydicom 3.0.2, nibabel 5.4.2, numpy 2.4.6.

Writes crate/kdlens/tests/fixtures/scans.json. For every file, what kdlens must show by default
(and for NIfTI also with a fixed window): a strided sample of the frame's values after the
modality LUT (pydicom's `pixel_array` + `apply_modality_lut`; nibabel's `get_fdata` on the
volume reoriented by `as_closest_canonical`), and of the display values in [0, 1] after the
VOI LUT or window (pydicom's `apply_voi_lut`, divided by its output range; MONOCHROME1 inverted,
as a viewer shows it — pydicom does not invert). kdlens rounds the display to 8 bits, so the
tests compare it within 1/255; the modality values are compared through a window that spans
exactly their sampled range, at the same 8-bit resolution.

It also writes the seeds of the `scan_decode` fuzz target into
crate/kdlens/fuzz/regressions/scan_decode/: a made-up 8×8 two-frame CT DICOM file, a 4×4×3
NIfTI-1 volume (gzipped and not) and a 4×4×3×2 NIfTI-2 volume, each behind the option byte the
harness reads first; and two files that claim more than they hold — a gzip bomb (a header
claiming 1024³ voxels) and a DICOM header claiming 1000 frames of 12000×12000.

Files that kdlens must refuse (colour JPEG-LS) are listed with the words its message must contain.
"""
import json
import os

import nibabel as nib
import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut

SCANS = "tests/.cache/scans"
OUT = "crate/kdlens/tests/fixtures/scans.json"
# About this many sampled values per image.
SAMPLES = 600


def sample(values):
    flat = np.asarray(values, dtype=np.float64).ravel()
    stride = max(1, len(flat) // SAMPLES)
    return stride, [round(float(v), 6) for v in flat[::stride]]


def dicom_entry(name):
    ds = pydicom.dcmread(os.path.join(SCANS, name))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    frame = frames // 2
    pixels = ds.pixel_array
    if frames > 1:
        pixels = pixels[frame]
    entry = {"file": name, "frames": frames, "frame": frame, "size": [int(ds.Rows), int(ds.Columns)]}
    if ds.SamplesPerPixel == 3:
        # pydicom converts YBR to RGB in pixel_array; kdlens shows colour as stored, 8 bits.
        rgb = pixels.astype(np.float64)
        if ds.BitsAllocated == 16:
            rgb = np.floor(rgb / 256)
        stride, values = sample(rgb / 255.0)
        entry.update(kind="rgb", stride=stride, display=values)
        return entry
    modality = apply_modality_lut(pixels, ds).astype(np.float64)
    has_lut = "VOILUTSequence" in ds
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    if has_lut:
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        display = apply_voi_lut(modality, ds, index=0).astype(np.float64) / (2**bits - 1)
        source = "voi-lut"
    elif has_window:
        ends = apply_voi_lut(np.array([-1e12, 1e12]), ds, index=0).astype(np.float64)
        display = (apply_voi_lut(modality, ds, index=0).astype(np.float64) - ends[0]) / (ends[1] - ends[0])
        source = "file"
    else:
        low, high = modality.min(), modality.max()
        display = np.clip((modality - low) / (high - low), 0, 1) if high > low else np.zeros_like(modality)
        source = "full"
    if ds.PhotometricInterpretation == "MONOCHROME1":
        display = 1.0 - display
    stride, modality_values = sample(modality)
    _, display_values = sample(np.clip(display, 0, 1))
    entry.update(kind="gray", source=source, stride=stride, modality=modality_values,
                 value_range=[float(modality.min()), float(modality.max())],
                 display=display_values, photometric=str(ds.PhotometricInterpretation))
    return entry


def nifti_entry(name, window):
    img = nib.load(os.path.join(SCANS, name))
    canonical = nib.as_closest_canonical(img)
    data = canonical.get_fdata()
    volumes = data.shape[3] if data.ndim == 4 else 1
    volume = volumes // 2
    if data.ndim == 4:
        data = data[..., volume]
    center, width = window
    low = center - 0.5 - (width - 1) / 2
    high = low + (width - 1)
    views = {}
    for plane in ["axial", "coronal", "sagittal"]:
        if plane == "axial":
            k = data.shape[2] // 2
            view = data[::-1, ::-1, k].T
        elif plane == "coronal":
            k = data.shape[1] // 2
            view = data[::-1, k, ::-1].T
        else:
            k = data.shape[0] // 2
            view = data[k, ::-1, ::-1].T
        stride, values = sample(view)
        display = np.clip((view - low) / (high - low), 0, 1)
        _, display_values = sample(display)
        views[plane] = {"slice": int(k), "size": list(view.shape), "stride": stride,
                        "values": values, "display": display_values}
    return {"file": name, "volumes": volumes, "volume": volume, "window": list(window), "planes": views,
            "value_range": [float(data.min()), float(data.max())]}


def write_fuzz_seeds():
    import gzip
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    out = "crate/kdlens/fuzz/regressions/scan_decode"
    os.makedirs(out, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = "2.25.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "2.25.1"
    ds.Modality = "CT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 8, 8, 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = (np.arange(128, dtype=np.uint16) * 31 % 4096).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with open(os.path.join(out, "ct-2frame.dcm"), "wb") as f:
        f.write(b"\x00" + buffer.getvalue())
    affine = np.array([[-2, 0, 0, 4], [0, 2, 0, -4], [0, 0, 3, 0], [0, 0, 0, 1]], dtype=float)
    volume = nib.Nifti1Image((np.arange(48, dtype=np.int16) * 7).reshape(4, 4, 3), affine)
    volume.set_qform(affine, code=1)
    raw = volume.to_bytes()
    with open(os.path.join(out, "volume.nii"), "wb") as f:
        f.write(b"\x09" + raw)
    with open(os.path.join(out, "volume.nii.gz"), "wb") as f:
        f.write(b"\x12" + gzip.compress(raw, mtime=0))
    volume2 = nib.Nifti2Image((np.arange(96, dtype=np.int16) * 5).reshape(4, 4, 3, 2), affine)
    with open(os.path.join(out, "volume2.nii"), "wb") as f:
        f.write(b"\x21" + volume2.to_bytes())
    # A gzip bomb: a header claiming a 1024³ int16 volume (2 GiB), then 64 MiB of zeros that
    # deflate to about 64 kB. kdlens must refuse it from the header, before inflating the rest.
    bomb = nib.Nifti1Image(np.zeros((1, 1, 1), dtype=np.int16), affine)
    bomb.header.set_data_shape((1024, 1024, 1024))
    header = bomb.header.binaryblock + b"\x00" * 4
    with open(os.path.join(out, "bomb.nii.gz"), "wb") as f:
        f.write(b"\x00" + gzip.compress(header + bytes(64 << 20), compresslevel=9, mtime=0))
    # A DICOM file whose header claims 1000 frames of 12000×12000 over 8 bytes of pixel data:
    # refused from the header, before any buffer is sized from it.
    ds.Rows, ds.Columns, ds.NumberOfFrames = 12000, 12000, 1000
    ds.PixelData = bytes(8)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with open(os.path.join(out, "ct-claims-huge.dcm"), "wb") as f:
        f.write(b"\x00" + buffer.getvalue())


def main():
    dicoms = ["CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
              "MR_small_expb.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm", "image_dfl.dcm",
              "SC_rgb_small_odd.dcm", "SC_ybr_full_422_uncompressed.dcm", "SC_rgb_rle_2frame.dcm",
              "RG1_UNCR.dcm", "vlut_04.dcm", "emri_small.dcm", "JPEG-LL.dcm",
              # JPEG 2000, lossless and lossy (pydicom decodes them with pylibjpeg-openjpeg).
              "MR_small_jp2klossless.dcm", "693_J2KI.dcm", "JPEG2000.dcm", "examples_jpeg2k.dcm",
              # Known attributes stored as UN; a Modality LUT Sequence in place of rescale.
              "explicit_VR-UN.dcm", "mlut_18.dcm",
              # JPEG-LS (pure_jpegls) and 12-bit lossy JPEG (libjpeg-turbo-rs).
              "MR_small_jpeg_ls_lossless.dcm", "JPGExtended.dcm"]
    # A fixed window per volume, in the volume's own units, so that the display is defined
    # without kdlens's percentile rule.
    niftis = [("anatomical.nii", (60.0, 120.0)), ("example4d.nii.gz", (1500.0, 3000.0)),
              ("standard.nii.gz", (50.0, 100.0)), ("example_nifti2.nii.gz", (400.0, 700.0))]
    out = {
        "dicom": [dicom_entry(n) for n in dicoms],
        "nifti": [nifti_entry(n, w) for n, w in niftis],
        "refused": [
            # Colour JPEG-LS: no pure-Rust decoder reads more than one component.
            {"file": "SC_rgb_jls_lossy_line.dcm", "message": "colour JPEG-LS is not supported"},
        ],
        "versions": {"pydicom": pydicom.__version__, "nibabel": nib.__version__, "numpy": np.__version__},
    }
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    write_fuzz_seeds()
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
