//! Model bundles: round trips at every precision, and every kind of damage rejected with a
//! message instead of a panic.

use burn::{
    module::Module,
    tensor::{Device, Distribution, Tensor},
};
use kdlens::{
    block_on,
    bundle::{Bundle, Manifest, WeightPrecision, frame},
    explain::predict,
    image::Preprocessing,
    model::{Architecture, Classifier, ModelSpec},
};

fn student(device: &Device) -> (Classifier, Manifest) {
    device.seed(5);
    let spec = ModelSpec::new(Architecture::FiveLayer, 3, [32, 32]).unwrap();
    let model = spec.init(device).unwrap().valid();
    let manifest = Manifest::new(
        "test student",
        spec,
        vec!["a".into(), "b".into(), "c".into()],
        Preprocessing::unit_range([32, 32]),
    );
    (model, manifest)
}

/// Splits a bundle into (manifest JSON, weights); [`assemble`] puts them back with a valid
/// checksum.
fn parts(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let m = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let manifest = serde_json::from_slice(&bytes[16..16 + m]).unwrap();
    let w = u64::from_le_bytes(bytes[16 + m..24 + m].try_into().unwrap()) as usize;
    (manifest, bytes[24 + m..24 + m + w].to_vec())
}

fn assemble(manifest: &serde_json::Value, weights: &[u8]) -> Vec<u8> {
    frame(&serde_json::to_vec(manifest).unwrap(), weights)
}

/// A change to a manifest.
type Edit = Box<dyn Fn(&mut serde_json::Value)>;

fn rejected(bytes: &[u8], device: &Device) -> String {
    match Bundle::from_bytes(bytes).and_then(|b| b.load_model(device)) {
        Ok(_) => panic!("damaged bundle accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_precision_round_trips_and_stays_close_to_the_original() {
    let device = Device::flex();
    let (model, manifest) = student(&device);
    let input = Tensor::<4>::random([1, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
    let reference = block_on(predict(&model, input.clone())).unwrap();
    for (precision, tolerance, max_len) in [
        (WeightPrecision::F32, 0.0, 8_100_000),
        (WeightPrecision::F16, 1e-3, 4_100_000),
        (WeightPrecision::Int8, 2e-2, 2_100_000),
    ] {
        let bundle = Bundle::new(&model, manifest.clone(), precision).unwrap();
        let bytes = bundle.to_bytes().unwrap();
        assert!(
            bytes.len() < max_len,
            "{precision:?}: {} bytes",
            bytes.len()
        );
        let loaded = Bundle::from_bytes(&bytes).unwrap();
        assert_eq!(loaded.manifest().weights.precision, precision);
        assert_eq!(loaded.manifest().classes, manifest.classes);
        let reloaded = loaded.load_model(&device).unwrap();
        let p = block_on(predict(&reloaded, input.clone())).unwrap();
        let worst = p
            .iter()
            .zip(&reference)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= tolerance,
            "{precision:?}: probabilities moved by {worst}"
        );
    }
}

#[test]
fn truncation_at_any_length_is_an_error_naming_the_problem() {
    let device = Device::flex();
    let (model, manifest) = student(&device);
    let bytes = Bundle::new(&model, manifest, WeightPrecision::Int8)
        .unwrap()
        .to_bytes()
        .unwrap();
    for cut in [
        0,
        3,
        8,
        11,
        15,
        40,
        bytes.len() / 2,
        bytes.len() - 33,
        bytes.len() - 1,
    ] {
        let message = rejected(&bytes[..cut], &device);
        assert!(
            message.contains("truncated")
                || message.contains("magic")
                || message.contains("checksum"),
            "cut at {cut}: {message}"
        );
    }
}

#[test]
fn wrong_magic_version_and_flipped_bits_are_rejected() {
    let device = Device::flex();
    let (model, manifest) = student(&device);
    let bytes = Bundle::new(&model, manifest, WeightPrecision::F16)
        .unwrap()
        .to_bytes()
        .unwrap();
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(rejected(&magic, &device).contains("magic"));
    let mut version = bytes.clone();
    version[8] = 2;
    assert!(rejected(&version, &device).contains("version 2"));
    for position in [20, 300, bytes.len() / 3, bytes.len() - 40, bytes.len() - 5] {
        let mut flipped = bytes.clone();
        flipped[position] ^= 0x10;
        let message = rejected(&flipped, &device);
        assert!(
            message.contains("checksum")
                || message.contains("manifest length")
                || message.contains("truncated"),
            "bit flip at {position}: {message}"
        );
    }
}

#[test]
fn manifests_that_disagree_with_the_weights_or_themselves_are_rejected() {
    let device = Device::flex();
    let (model, manifest) = student(&device);
    let bytes = Bundle::new(&model, manifest, WeightPrecision::F32)
        .unwrap()
        .to_bytes()
        .unwrap();
    let (manifest, weights) = parts(&bytes);

    let edits: Vec<(&str, Edit, &str)> = vec![
        (
            "classes vs outputs",
            Box::new(|m| m["classes"] = serde_json::json!(["a", "b"])),
            "names 2 classes",
        ),
        (
            "another architecture",
            Box::new(|m| {
                m["spec"]["architecture"] = serde_json::json!({"kind": "kd8"});
                m["weights"]["params"] = serde_json::json!(
                    ModelSpec::new(Architecture::Kd8, 3, [32, 32])
                        .unwrap()
                        .cost()
                        .params()
                );
            }),
            // A kd8 has more parameters than the five-layer weights hold: refused before the
            // model is even allocated.
            "weights section holds",
        ),
        (
            "absurd DenseNet widths",
            Box::new(|m| {
                m["spec"]["architecture"] = serde_json::json!({
                    "kind": "dense-net", "growth_rate": 1_000_000, "block_config": [6, 12, 24, 16],
                    "num_init_features": 64, "bn_size": 4
                })
            }),
            "out of range",
        ),
        (
            "a DenseNet of billions of parameters",
            Box::new(|m| {
                m["spec"]["architecture"] = serde_json::json!({
                    "kind": "dense-net", "growth_rate": 256, "block_config": [256, 256, 256, 256],
                    "num_init_features": 1024, "bn_size": 16
                })
            }),
            "at most 100000000 are supported",
        ),
        (
            "absurd input",
            Box::new(|m| {
                m["spec"]["input_size"] = serde_json::json!([100000, 100000]);
                m["preprocessing"]["input_size"] = serde_json::json!([100000, 100000]);
            }),
            "at most 2048",
        ),
        (
            "absurd class count",
            Box::new(|m| m["spec"]["num_classes"] = serde_json::json!(1u64 << 40)),
            "classes",
        ),
        (
            "parameter count",
            Box::new(|m| m["weights"]["params"] = serde_json::json!(12)),
            "parameters",
        ),
        (
            "weights hash",
            Box::new(|m| m["weights"]["sha256"] = serde_json::json!("00")),
            "hash",
        ),
        (
            "preprocessing size",
            Box::new(|m| m["preprocessing"]["input_size"] = serde_json::json!([64, 64])),
            "preprocessing",
        ),
        (
            "zero std",
            Box::new(|m| m["preprocessing"]["std"] = serde_json::json!([1.0, 0.0, 1.0])),
            "std",
        ),
        (
            "not a manifest",
            Box::new(|m| *m = serde_json::json!({"hello": "world"})),
            "manifest is not valid",
        ),
    ];
    for (what, edit, expected) in edits {
        let mut edited = manifest.clone();
        edit(&mut edited);
        let message = rejected(&assemble(&edited, &weights), &device);
        assert!(message.contains(expected), "{what}: {message}");
    }
    // The untouched parts reassemble into a valid bundle (the helper is right).
    assert!(
        Bundle::from_bytes(&assemble(&manifest, &weights))
            .unwrap()
            .load_model(&device)
            .is_ok()
    );
}

#[test]
fn weights_of_another_model_are_rejected_even_with_a_consistent_manifest() {
    let device = Device::flex();
    let (model, manifest) = student(&device);
    let bytes = Bundle::new(&model, manifest, WeightPrecision::F32)
        .unwrap()
        .to_bytes()
        .unwrap();
    let (mut manifest, _) = parts(&bytes);
    // weights of a 4-class student under a 3-class manifest whose hash matches them
    let other = ModelSpec::new(Architecture::FiveLayer, 4, [32, 32])
        .unwrap()
        .init(&device)
        .unwrap();
    let other_manifest = Manifest::new(
        "four",
        ModelSpec::new(Architecture::FiveLayer, 4, [32, 32]).unwrap(),
        (0..4).map(|i| i.to_string()).collect(),
        Preprocessing::unit_range([32, 32]),
    );
    let other_bytes = Bundle::new(&other, other_manifest, WeightPrecision::F32)
        .unwrap()
        .to_bytes()
        .unwrap();
    let (other_manifest, other_weights) = parts(&other_bytes);
    manifest["weights"]["sha256"] = other_manifest["weights"]["sha256"].clone();
    let message = rejected(&assemble(&manifest, &other_weights), &device);
    assert!(message.contains("weights do not match"), "{message}");
}
