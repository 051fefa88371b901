//! Replays the saved fuzz inputs (`fuzz/regressions/<target>/`: seeds and every input a fuzzer
//! ever crashed on) through the same harness the fuzz targets use: each must end in `Ok` or a clear `Err`.
//!
//! `cargo test -p kdlens --test fuzz_regressions -- --ignored` (re)writes the seed corpus into
//! `$KDLENS_FUZZ_SEEDS` (see `pkg-scripts/fuzz.sh`).

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use kdlens::{
    bundle::{Bundle, Manifest, WeightPrecision},
    image::Preprocessing,
    model::{Architecture, DenseNetConfig, ModelSpec},
};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Feeds every saved input of `target` to `harness`, naming each file before it runs.
fn replay(target: &str, harness: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty());
    for file in files {
        println!("{}", file.display());
        harness(&std::fs::read(&file).unwrap());
    }
}

#[test]
fn saved_bundle_reader_inputs_do_not_panic() {
    replay("bundle_reader", harness::bundle_reader);
}

#[test]
fn saved_decode_preprocess_inputs_do_not_panic() {
    replay("decode_preprocess", harness::decode_preprocess);
}

#[test]
fn saved_scan_decode_inputs_do_not_panic() {
    replay("scan_decode", harness::scan_decode);
}

/// The saved files that claim far more than they hold (written by
/// `pkg-scripts/make-scan-fixtures.py`) are refused from their headers, with what they claim.
#[test]
fn files_claiming_more_than_they_hold_are_refused_from_their_headers() {
    use kdlens::image::scan::{ScanOptions, decode_scan};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/scan_decode");
    for (file, words) in [
        ("bomb.nii.gz", "claims 1073741824 voxels"),
        ("ct-claims-huge.dcm", "the scan claims 144000000000 values"),
    ] {
        // After the harness's option byte.
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let error = decode_scan(&bytes[1..], &ScanOptions::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains(words), "{file}: {error}");
    }
}

/// The smallest DenseNet a bundle can hold (≈30 kB, mostly tensor names), so that the fuzzer's
/// inputs stay small.
fn tiny_bundle() -> Bundle {
    let device = Device::flex();
    device.seed(1);
    let config = DenseNetConfig {
        growth_rate: 2,
        block_config: [1, 1, 1, 1],
        num_init_features: 2,
        bn_size: 1,
    };
    let spec = ModelSpec::new(Architecture::DenseNet(config), 2, [32, 32]).unwrap();
    let model = spec.init(&device).unwrap();
    let manifest = Manifest::new(
        "fuzz seed",
        spec,
        vec!["a".into(), "b".into()],
        Preprocessing::unit_range([32, 32]),
    );
    Bundle::new(&model, manifest, WeightPrecision::Int8).unwrap()
}

#[test]
fn the_tiny_seed_bundle_loads() {
    let bytes = tiny_bundle().to_bytes().unwrap();
    assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
    Bundle::from_bytes(&bytes)
        .unwrap()
        .load_model(&Device::flex())
        .unwrap();
}

#[test]
#[ignore = "writes the fuzz seed corpus; run by pkg-scripts/fuzz.sh"]
fn write_fuzz_seeds() {
    let out = PathBuf::from(std::env::var("KDLENS_FUZZ_SEEDS").expect("set KDLENS_FUZZ_SEEDS"));
    let bundles = out.join("bundle_reader");
    std::fs::create_dir_all(&bundles).unwrap();
    for precision in [
        WeightPrecision::F32,
        WeightPrecision::F16,
        WeightPrecision::Int8,
    ] {
        let device = Device::flex();
        let bundle = tiny_bundle();
        let model = bundle.load_model(&device).unwrap();
        let bundle = Bundle::new(&model, bundle.manifest().clone(), precision).unwrap();
        let bytes = bundle.to_bytes().unwrap();
        std::fs::write(bundles.join(format!("raw-{precision:?}")), &bytes).unwrap();
        // The framed form (odd first byte): manifest JSON, 0xFF, weights.
        let m = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let mut framed = vec![1u8];
        framed.extend_from_slice(&bytes[16..16 + m]);
        framed.push(0xFF);
        framed.extend_from_slice(&bytes[24 + m..bytes.len() - 32]);
        std::fs::write(bundles.join(format!("framed-{precision:?}")), framed).unwrap();
    }
    let images = out.join("decode_preprocess");
    std::fs::create_dir_all(&images).unwrap();
    let gradient: Vec<u8> = (0..8 * 6 * 4).map(|i| (i * 7 % 256) as u8).collect();
    let rgba = image::RgbaImage::from_raw(8, 6, gradient).unwrap();
    for (name, format) in [
        ("seed.png", image::ImageFormat::Png),
        ("seed.jpg", image::ImageFormat::Jpeg),
        ("seed.bmp", image::ImageFormat::Bmp),
        ("seed.gif", image::ImageFormat::Gif),
        ("seed.tiff", image::ImageFormat::Tiff),
        ("seed.webp", image::ImageFormat::WebP),
    ] {
        let image = image::DynamicImage::ImageRgba8(rgba.clone());
        let image = if format == image::ImageFormat::Jpeg {
            image::DynamicImage::ImageRgb8(image.to_rgb8())
        } else {
            image
        };
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        std::fs::write(images.join(name), bytes.into_inner()).unwrap();
    }
}
