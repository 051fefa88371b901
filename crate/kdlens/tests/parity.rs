//! Parity with PyTorch on identical weights (fixtures from `pkg-scripts/make-fixtures.py`):
//! DenseNet (torchvision, small configuration) and the five-layer student — logits, every
//! stage's channel-mean map, Grad-CAM maps and weights, expected-gradients attributions — plus
//! the bilinear resize, all within 1e-4. Runs on `flex`, and on `wgpu` when a Vulkan adapter
//! exists (it prints why it skips otherwise).

use std::{io::Read, path::PathBuf};

use burn::{
    module::Module,
    tensor::{Device, Tensor, TensorData},
};
use kdlens::{
    block_on,
    explain::{CamScore, ExpectedGradients, Target, expected_gradients, feature_maps, grad_cam},
    image::resize_plane,
    model::{
        Classifier, DenseNet, DenseNetConfig, FiveLayerStudent, LayeredClassifier,
        load_pytorch_state_dict, load_torchvision_densenet,
    },
};
use safetensors::SafeTensors;

const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Reference {
    bytes: Vec<u8>,
}

impl Reference {
    fn load() -> Self {
        Self {
            bytes: std::fs::read(fixture("parity.safetensors")).expect("parity fixture"),
        }
    }

    fn get(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let tensors = SafeTensors::deserialize(&self.bytes).unwrap();
        let view = tensors
            .tensor(name)
            .unwrap_or_else(|_| panic!("fixture has no {name}"));
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (view.shape().to_vec(), values)
    }

    fn indices(&self, name: &str) -> Vec<usize> {
        let tensors = SafeTensors::deserialize(&self.bytes).unwrap();
        let view = tensors.tensor(name).unwrap();
        view.data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as usize)
            .collect()
    }

    fn tensor(&self, name: &str, device: &Device) -> Tensor<4> {
        let (shape, values) = self.get(name);
        let shape: [usize; 4] = shape.try_into().unwrap();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn values(&self, name: &str) -> Vec<f32> {
        self.get(name).1
    }
}

fn assert_close(what: &str, actual: &[f32], expected: &[f32], tolerance: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let worst = actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= tolerance,
        "{what}: max abs diff {worst:e} > {tolerance:e}"
    );
}

fn small_densenet(device: &Device, file: &str) -> Classifier {
    let config = DenseNetConfig {
        growth_rate: 8,
        block_config: [2, 2, 2, 2],
        num_init_features: 16,
        bn_size: 2,
    };
    let model = DenseNet::new(&config, 5, [48, 48], device);
    let (model, head_loaded) = load_torchvision_densenet(model, &fixture(file)).unwrap();
    assert!(
        head_loaded,
        "the 5-class head matches the checkpoint and must be loaded"
    );
    Classifier::DenseNet(model).valid()
}

fn student(device: &Device) -> Classifier {
    let mut gz =
        flate2::read::GzDecoder::new(std::fs::File::open(fixture("student.pth.gz")).unwrap());
    let mut bytes = Vec::new();
    gz.read_to_end(&mut bytes).unwrap();
    let dir = std::env::temp_dir().join(format!("kdlens-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("student.pth");
    std::fs::write(&path, bytes).unwrap();
    let model = load_pytorch_state_dict(FiveLayerStudent::new(4, [64, 64], device), &path).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    Classifier::FiveLayer(model).valid()
}

fn check_densenet(device: &Device, reference: &Reference, file: &str) {
    let model = small_densenet(device, file);
    let input = reference.tensor("dn_input", device);
    let maps = block_on(feature_maps(&model, input.clone())).unwrap();
    assert_close(
        "densenet logits",
        &maps.logits,
        &reference.values("dn_logits"),
        TOLERANCE,
    );
    for (k, map) in maps.maps.iter().enumerate() {
        let what = format!("densenet stage {k} ({}) channel mean", map.layer);
        assert_close(
            &what,
            &map.values,
            &reference.values(&format!("dn_mean_{k}")),
            TOLERANCE,
        );
    }
    for (layer, class) in [(8usize, 3usize), (4, 1)] {
        let name = model.layers()[layer].name.clone();
        let cam = block_on(grad_cam(
            &model,
            input.clone(),
            Some(&name),
            Target::Class(class),
            CamScore::Logit,
        ))
        .unwrap();
        let tag = format!("{layer}_{class}");
        assert_close(
            &format!("densenet Grad-CAM {name}"),
            &cam.raw.values,
            &reference.values(&format!("dn_cam_{tag}")),
            TOLERANCE,
        );
        assert_close(
            &format!("densenet Grad-CAM weights {name}"),
            &cam.weights,
            &reference.values(&format!("dn_camw_{tag}")),
            TOLERANCE,
        );
    }
}

fn check_student(device: &Device, reference: &Reference) {
    let model = student(device);
    let input = reference.tensor("st_input", device);
    let maps = block_on(feature_maps(&model, input.clone())).unwrap();
    assert_close(
        "student logits",
        &maps.logits,
        &reference.values("st_logits"),
        TOLERANCE,
    );
    for (k, map) in maps.maps.iter().enumerate() {
        assert_close(
            &format!("student {} channel mean", map.layer),
            &map.values,
            &reference.values(&format!("st_mean_{k}")),
            TOLERANCE,
        );
    }
    for (layer, class, score, tag) in [
        ("conv5", 1, CamScore::Logit, "4_1_l"),
        ("conv5", 1, CamScore::Probability, "4_1_p"),
        ("conv3", 2, CamScore::Logit, "2_2_l"),
    ] {
        let cam = block_on(grad_cam(
            &model,
            input.clone(),
            Some(layer),
            Target::Class(class),
            score,
        ))
        .unwrap();
        assert_close(
            &format!("student Grad-CAM {tag}"),
            &cam.raw.values,
            &reference.values(&format!("st_cam_{tag}")),
            TOLERANCE,
        );
        assert_close(
            &format!("student Grad-CAM weights {tag}"),
            &cam.weights,
            &reference.values(&format!("st_camw_{tag}")),
            TOLERANCE,
        );
    }
    let background = reference.tensor("st_eg_background", device);
    let index = reference.indices("st_eg_index");
    let t = reference.values("st_eg_t");
    let plan = ExpectedGradients {
        draws: index.into_iter().zip(t).collect(),
        batch_size: 8,
    };
    let attributions = block_on(expected_gradients(
        &model,
        input,
        background,
        &[0, 3],
        &plan,
    ))
    .unwrap();
    for attribution in attributions {
        let expected = reference.values(&format!("st_eg_phi_{}", attribution.class));
        assert_close(
            &format!("expected gradients class {}", attribution.class),
            &attribution.values,
            &expected,
            TOLERANCE,
        );
    }
}

#[test]
fn torchvision_densenet_matches_pytorch_on_flex() {
    check_densenet(&Device::flex(), &Reference::load(), "densenet_small.pth");
}

#[test]
fn legacy_torchvision_checkpoint_keys_load_to_the_same_model() {
    check_densenet(
        &Device::flex(),
        &Reference::load(),
        "densenet_small_legacy.pth",
    );
}

#[test]
fn five_layer_student_matches_pytorch_on_flex() {
    check_student(&Device::flex(), &Reference::load());
}

#[test]
fn bilinear_resize_matches_pytorch() {
    let reference = Reference::load();
    let src = reference.values("resize_src");
    assert_close(
        "upsampling",
        &resize_plane(&src, [13, 17], [40, 50]),
        &reference.values("resize_up"),
        1e-5,
    );
    assert_close(
        "antialiased downsampling",
        &resize_plane(&src, [13, 17], [5, 7]),
        &reference.values("resize_down"),
        1e-5,
    );
}

/// The same checks on burn's wgpu backend when this machine has a Vulkan (or Metal/DX12)
/// adapter — Mesa's lavapipe counts. Without one the test says so and passes.
#[test]
fn parity_holds_on_wgpu_when_an_adapter_exists() {
    let device = match Device::wgpu_options().init() {
        Ok(device) => device,
        Err(e) => {
            eprintln!("SKIPPED wgpu parity: no wgpu adapter on this machine ({e})");
            return;
        }
    };
    let reference = Reference::load();
    check_densenet(&device, &reference, "densenet_small.pth");
    check_student(&device, &reference);
}
