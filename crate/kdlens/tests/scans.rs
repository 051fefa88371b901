//! DICOM and NIfTI decoding on real files (pydicom's, pydicom-data's and nibabel's test files,
//! fetched by `pkg-scripts/fetch-test-scans.sh`) against what pydicom and nibabel compute
//! (`tests/fixtures/scans.json`, from `pkg-scripts/make-scan-fixtures.py`).

use std::path::PathBuf;

use kdlens::image::scan::{Plane, ScanFormat, ScanOptions, Window, WindowChoice, decode_scan};
use serde_json::Value;

mod common;

use common::fetched::{fetched, fixture, floats};

fn scans_dir() -> Option<PathBuf> {
    fetched("scans", "CT_small.dcm")
}

fn fixtures() -> Value {
    fixture("scans.json")
}

/// The gray level (red channel) of every `stride`-th pixel, on `[0, 1]`.
fn shades(pixels: &[u8], stride: usize, channels: usize) -> Vec<f64> {
    pixels
        .chunks_exact(4)
        .step_by(stride)
        .flat_map(|p| p[..channels].iter().map(|&v| v as f64 / 255.0))
        .collect()
}

/// Lossy files whose decoders differ from the reference's, allowed two 8-bit steps.
const LOSSY: &[(&str, &str)] = &[
    (
        "JPGExtended.dcm",
        "12-bit lossy JPEG: libjpeg-turbo-rs' inverse DCT rounds about one stored value in 70 one \
         step apart from the reference's libjpeg",
    ),
    (
        "JPEG2000.dcm",
        "lossy JPEG 2000: hayro-jpeg2000's irreversible 9/7 wavelet rounds some stored values one \
         step apart from the reference's OpenJPEG",
    ),
];

/// Every sampled display value within one 8-bit step (and rounding) of the reference; two for
/// the files in [`LOSSY`].
fn assert_display(file: &str, ours: &[f64], reference: &[f64]) {
    assert_eq!(ours.len(), reference.len(), "{file}: sample count");
    let lossy = LOSSY.iter().any(|(name, _)| file.starts_with(name));
    let steps = if lossy { 2.0 } else { 1.0 };
    let worst = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= steps / 255.0 + 1e-6,
        "{file}: display differs by {worst}"
    );
}

/// The values after the modality LUT against pydicom's `apply_modality_lut`, seen through a
/// window that spans exactly their sampled range (so an error in the rescale shows at 8-bit
/// resolution of that range).
fn assert_modality_values(file: &str, bytes: &[u8], entry: &Value, stride: usize) {
    let values = floats(&entry["modality"]);
    let (low, high) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    if high <= low {
        return;
    }
    let window = Window {
        center: (low + high) / 2.0 + 0.5,
        width: high - low + 1.0,
    };
    let options = ScanOptions {
        window: WindowChoice::Manual(window),
        ..ScanOptions::default()
    };
    let scan = decode_scan(bytes, &options).unwrap();
    let invert = entry["photometric"] == "MONOCHROME1";
    let expected: Vec<f64> = values
        .iter()
        .map(|v| {
            let shade = (v - low) / (high - low);
            if invert { 1.0 - shade } else { shade }
        })
        .collect();
    let what = format!("{file} (modality values)");
    assert_display(&what, &shades(scan.image.pixels(), stride, 1), &expected);
}

/// The smallest and largest value after the modality LUT against the reference's (to f32
/// precision: kdlens holds the values as f32).
fn assert_value_range(what: &str, ours: Option<[f64; 2]>, reference: &Value) {
    let ours = ours.unwrap_or_else(|| panic!("{what}: no value range"));
    for (a, b) in ours.iter().zip(floats(reference)) {
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
            "{what}: value range {ours:?}, reference {reference}"
        );
    }
}

#[test]
fn dicom_files_show_what_pydicom_computes() {
    let Some(dir) = scans_dir() else { return };
    for entry in fixtures()["dicom"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let scan =
            decode_scan(&bytes, &ScanOptions::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let size: Vec<usize> = floats(&entry["size"]).iter().map(|&v| v as usize).collect();
        assert_eq!(scan.facts.format, ScanFormat::Dicom);
        assert_eq!(scan.facts.size.to_vec(), size, "{file}: size");
        assert_eq!(
            [scan.facts.frames, scan.facts.frame],
            [
                entry["frames"].as_u64().unwrap() as usize,
                entry["frame"].as_u64().unwrap() as usize
            ],
            "{file}: frames"
        );
        assert_eq!(
            (scan.image.height(), scan.image.width()),
            (size[0], size[1]),
            "{file}: image size"
        );
        let stride = entry["stride"].as_u64().unwrap() as usize;
        let reference = floats(&entry["display"]);
        if entry["kind"] == "rgb" {
            // The reference samples every `stride`-th value of the interleaved RGB array.
            let rgb = shades(scan.image.pixels(), 1, 3);
            let ours: Vec<f64> = rgb.iter().step_by(stride).copied().collect();
            assert_display(file, &ours, &reference);
            assert_eq!(
                scan.facts.value_range, None,
                "{file}: colour has no value range"
            );
        } else {
            assert_value_range(file, scan.facts.value_range, &entry["value_range"]);
            assert_eq!(
                scan.facts.window_source.as_deref(),
                entry["source"].as_str(),
                "{file}: window source"
            );
            assert_display(file, &shades(scan.image.pixels(), stride, 1), &reference);
            assert_modality_values(file, &bytes, entry, stride);
        }
    }
}

#[test]
fn unsupported_files_are_refused_by_name() {
    let Some(dir) = scans_dir() else { return };
    for entry in fixtures()["refused"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let err = decode_scan(&bytes, &ScanOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{file} decoded"))
            .to_string();
        let expected = entry["message"].as_str().unwrap();
        assert!(err.contains(expected), "{file}: {err}");
    }
}

#[test]
fn nifti_slices_match_nibabel_in_every_plane() {
    let Some(dir) = scans_dir() else { return };
    for entry in fixtures()["nifti"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let [center, width] = floats(&entry["window"])[..] else {
            panic!()
        };
        for (name, plane) in [
            ("axial", Plane::Axial),
            ("coronal", Plane::Coronal),
            ("sagittal", Plane::Sagittal),
        ] {
            let expected = &entry["planes"][name];
            let options = ScanOptions {
                window: WindowChoice::Manual(Window { center, width }),
                plane,
                ..ScanOptions::default()
            };
            let scan = decode_scan(&bytes, &options).unwrap_or_else(|e| panic!("{file}: {e}"));
            let size: Vec<usize> = floats(&expected["size"])
                .iter()
                .map(|&v| v as usize)
                .collect();
            let what = format!("{file} {name}");
            assert_eq!(scan.facts.size.to_vec(), size, "{what}: size");
            assert_eq!(
                scan.facts.slice,
                expected["slice"].as_u64().map(|s| s as usize),
                "{what}"
            );
            assert_eq!(
                scan.facts.frame,
                entry["volume"].as_u64().unwrap() as usize,
                "{what}"
            );
            assert_value_range(&what, scan.facts.value_range, &entry["value_range"]);
            let stride = expected["stride"].as_u64().unwrap() as usize;
            assert_display(
                &what,
                &shades(scan.image.pixels(), stride, 1),
                &floats(&expected["display"]),
            );
        }
    }
}

#[test]
fn frames_slices_and_windows_are_chosen_by_the_options() {
    let Some(dir) = scans_dir() else { return };
    let frame = |frame| ScanOptions {
        frame: Some(frame),
        ..Default::default()
    };
    let window = |text: &str| ScanOptions {
        window: text.parse().unwrap(),
        ..Default::default()
    };
    let bytes = std::fs::read(dir.join("emri_small.dcm")).unwrap();
    let first = decode_scan(&bytes, &frame(0)).unwrap();
    let last = decode_scan(&bytes, &frame(9)).unwrap();
    assert_eq!((first.facts.frame, last.facts.frame), (0, 9));
    assert_ne!(first.image.pixels(), last.image.pixels(), "frames differ");
    let past = decode_scan(&bytes, &frame(10));
    assert!(past.unwrap_err().to_string().contains("frame 10"));

    let ct = std::fs::read(dir.join("CT_small.dcm")).unwrap();
    let brain = decode_scan(&ct, &window("brain")).unwrap();
    let bone = decode_scan(&ct, &window("bone")).unwrap();
    assert_eq!(brain.facts.window_source.as_deref(), Some("brain"));
    assert_eq!(brain.facts.window, Some([0.0, 79.0]));
    assert_ne!(
        brain.image.pixels(),
        bone.image.pixels(),
        "the window changes the image"
    );

    let nii = std::fs::read(dir.join("anatomical.nii")).unwrap();
    let options = |slice| ScanOptions {
        slice: Some(slice),
        ..Default::default()
    };
    let low = decode_scan(&nii, &options(3)).unwrap();
    let high = decode_scan(&nii, &options(20)).unwrap();
    assert_eq!((low.facts.slice, high.facts.slice), (Some(3), Some(20)));
    assert_ne!(low.image.pixels(), high.image.pixels(), "slices differ");
    assert!(decode_scan(&nii, &options(10_000)).is_err());
}
