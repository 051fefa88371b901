//! What each fuzz target does with one input, shared by the fuzz targets and by the regression
//! test that replays every saved crash (`crate/kdlens/tests/fuzz_regressions.rs`).
//!
//! Both functions must return normally for every input: an `Err` is the correct answer to bad
//! bytes, a panic is a bug.

use burn::tensor::Device;
use kdlens::{
    bundle::{Bundle, frame},
    image::{
        ColorMode, Preprocessing, decode_bytes,
        scan::{Plane, ScanOptions, WindowChoice, decode_scan},
    },
};
use sha2::{Digest, Sha256};

/// Reads `data` as a model bundle and, when it parses, builds the model on the CPU.
///
/// Inputs whose first byte is odd are instead treated as `manifest JSON, 0xFF, weights`: the
/// harness frames them as a bundle with a correct checksum and weights hash, so that mutations
/// reach manifest validation and weight decoding instead of stopping at the checksum.
pub fn bundle_reader(data: &[u8]) {
    let bytes = match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => frame_parts(rest),
        _ => data.to_vec(),
    };
    if let Ok(bundle) = Bundle::from_bytes(&bytes) {
        let _ = bundle.load_model(&Device::flex());
    }
}

fn frame_parts(data: &[u8]) -> Vec<u8> {
    let split = data.iter().position(|&b| b == 0xFF).unwrap_or(data.len());
    let (manifest, weights) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let manifest = match serde_json::from_slice::<serde_json::Value>(manifest) {
        Ok(mut value) => {
            let hash: String = Sha256::digest(weights)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if let Some(w) = value.get_mut("weights").and_then(|w| w.as_object_mut()) {
                w.insert("sha256".into(), hash.into());
            }
            serde_json::to_vec(&value).unwrap_or_default()
        }
        Err(_) => manifest.to_vec(),
    };
    frame(&manifest, weights)
}

/// Decodes `data` as an image file and runs the preprocessing path (resize, colour handling,
/// normalisation) to a 32×32 input, in RGB and in grayscale.
pub fn decode_preprocess(data: &[u8]) {
    if let Ok(image) = decode_bytes(data) {
        for color in [ColorMode::Rgb, ColorMode::Grayscale] {
            let mut preprocessing = Preprocessing::unit_range([32, 32]);
            preprocessing.color = color;
            let chw = preprocessing
                .to_chw(&image)
                .expect("a decoded image always preprocesses");
            assert_eq!(chw.len(), 3 * 32 * 32);
            assert!(chw.iter().all(|v| v.is_finite()));
        }
    }
}

/// Decodes `data[1..]` as a DICOM or NIfTI file with options chosen by `data[0]` (window kind,
/// frame, plane, slice), and checks that a decoded scan's image has the size its facts state.
pub fn scan_decode(data: &[u8]) {
    let Some((&choice, file)) = data.split_first() else {
        return;
    };
    let window = match (choice & 7) % 5 {
        0 => WindowChoice::Auto,
        1 => WindowChoice::Full,
        2 => "brain".parse().expect("a preset"),
        3 => "-600,1500".parse().expect("a window"),
        _ => "p1,99".parse().expect("percentiles"),
    };
    // Each option has its own bits of the first byte: the window bits 0–2 (modulo 5), the plane
    // bits 3–4, a frame bit 5, a slice bit 6, and bit 7 which frame or slice (0 or 1).
    let options = ScanOptions {
        window,
        frame: (choice & 0x20 != 0).then_some(usize::from(choice >> 7)),
        plane: [Plane::Axial, Plane::Coronal, Plane::Sagittal][usize::from((choice >> 3) & 3) % 3],
        slice: (choice & 0x40 != 0).then_some(usize::from(choice >> 7)),
    };
    if let Ok(scan) = decode_scan(file, &options) {
        let [rows, cols] = scan.facts.size;
        assert_eq!((scan.image.height(), scan.image.width()), (rows, cols));
    }
}
