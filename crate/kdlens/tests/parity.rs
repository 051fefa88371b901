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
use common::{
    formula, grad_cam,
    torch_file::{self, write_state_dict},
};
use kdlens::{
    block_on,
    explain::{
        Baseline, CamScore, ExpectedGradients, IntegratedGradientsPlan, Method, Quadrature, Target,
        class_activation_maps, expected_gradients, feature_maps, integrated_gradients, quadrature,
    },
    image::gaussian_blur,
    image::resize_plane,
    model::{
        Classifier, DenseNet, DenseNetConfig, FiveLayerStudent, LayeredClassifier,
        load_pytorch_state_dict, load_torchvision_densenet,
    },
};
use safetensors::SafeTensors;

mod common;

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
        Self::open("parity.safetensors")
    }

    fn open(name: &str) -> Self {
        Self {
            bytes: std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}")),
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

/// Max abs difference at most `tolerance` times the reference's largest magnitude: the student's
/// fixture values are of order 1e-3 to 1e-6, where an absolute bound says little.
fn assert_close_relative(what: &str, actual: &[f32], expected: &[f32], tolerance: f32) {
    let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what}: the reference is all zeros");
    assert_close(what, actual, expected, tolerance * scale);
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
    // One folder per call: tests run in parallel threads of one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kdlens-parity-{}-{call}", std::process::id()));
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
            cam.weights.as_ref().unwrap(),
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
            cam.weights.as_ref().unwrap(),
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

/// torchvision's DenseNet-121 (1000 classes) with the shared formula's weights, written as a
/// `.pth` in torchvision's layout, in a temporary folder.
struct Densenet121Checkpoint {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Densenet121Checkpoint {
    fn write() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("densenet121.pth");
        write_state_dict(&path, &formula::densenet121_state_dict(1000)).unwrap();
        Self { _dir: dir, path }
    }

    /// The checkpoint loaded into a DenseNet-121 of `classes` outputs at 224², with whether its
    /// classifier came from the file.
    fn load(&self, classes: usize, device: &Device) -> (Classifier, bool) {
        let model = DenseNet::new(&DenseNetConfig::densenet121(), classes, [224, 224], device);
        let (model, head) = load_torchvision_densenet(model, &self.path).unwrap();
        (Classifier::DenseNet(model).valid(), head)
    }
}

fn formula_input(device: &Device) -> Tensor<4> {
    let torch_file::Values::F32(values) = formula::values("input", &[1, 3, 224, 224]) else {
        unreachable!("the input is float")
    };
    Tensor::from_data(TensorData::new(values, [1, 3, 224, 224]), device)
}

/// Full-size DenseNet-121 at 224² against torchvision (fixture from
/// `pkg-scripts/make-densenet121-fixture.py`, same formula weights and input): logits, the nine
/// stage means and Grad-CAM at `norm5` for the top class and another, within 1e-4 of each
/// reference's largest magnitude.
#[test]
fn full_densenet121_at_224_matches_torchvision_on_flex() {
    let device = Device::flex();
    let checkpoint = Densenet121Checkpoint::write();
    let (model, head_loaded) = checkpoint.load(1000, &device);
    assert!(head_loaded, "the 1000-class head matches the checkpoint");
    let reference = Reference::open("densenet121.safetensors");
    let input = formula_input(&device);
    let maps = block_on(feature_maps(&model, input.clone())).unwrap();
    assert_close_relative(
        "DenseNet-121 logits",
        &maps.logits,
        &reference.values("logits"),
        TOLERANCE,
    );
    assert_eq!(maps.maps.len(), 9);
    for (k, map) in maps.maps.iter().enumerate() {
        assert_close_relative(
            &format!("DenseNet-121 stage {k} ({}) channel mean", map.layer),
            &map.values,
            &reference.values(&format!("mean_{k}")),
            TOLERANCE,
        );
    }
    for class in [110usize, 7] {
        let cam = block_on(grad_cam(
            &model,
            input.clone(),
            Some("features.norm5"),
            Target::Class(class),
            CamScore::Logit,
        ))
        .unwrap();
        assert_close_relative(
            &format!("DenseNet-121 Grad-CAM class {class}"),
            &cam.raw.values,
            &reference.values(&format!("cam_{class}")),
            TOLERANCE,
        );
        assert_close_relative(
            &format!("DenseNet-121 Grad-CAM weights class {class}"),
            cam.weights.as_ref().unwrap(),
            &reference.values(&format!("camw_{class}")),
            TOLERANCE,
        );
    }
}

/// The same checkpoint into a 4-class DenseNet-121 (what `train-teacher --init` does for a
/// 4-class task): the 1000-class head is left out, and every stage is exactly the 1000-class
/// model's.
#[test]
fn an_imagenet_checkpoint_starts_a_four_class_densenet121() {
    let device = Device::flex();
    let checkpoint = Densenet121Checkpoint::write();
    let (imagenet, _) = checkpoint.load(1000, &device);
    let (four, head_loaded) = checkpoint.load(4, &device);
    assert!(!head_loaded, "a 1000-class head cannot serve 4 classes");
    let input = formula_input(&device);
    let expected = block_on(feature_maps(&imagenet, input.clone())).unwrap();
    let got = block_on(feature_maps(&four, input)).unwrap();
    assert_eq!(got.logits.len(), 4);
    for (a, b) in got.maps.iter().zip(&expected.maps) {
        assert_eq!(a.values, b.values, "stage {}", a.layer);
    }
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

/// Grad-CAM, Grad-CAM++, HiResCAM and LayerCAM against the `grad-cam` package (fixtures from
/// `pkg-scripts/make-trust-fixtures.py`): maps and channel weights within 1e-4 of the largest
/// reference value.
fn check_cam_family(device: &Device, trust: &Reference) {
    let parity = Reference::load();
    let cases = [
        (
            "st",
            student(device),
            parity.tensor("st_input", device),
            [(4usize, 1usize), (2, 2)],
        ),
        (
            "dn",
            small_densenet(device, "densenet_small.pth"),
            parity.tensor("dn_input", device),
            [(8, 3), (4, 1)],
        ),
    ];
    for (prefix, model, input, stages) in cases {
        for (stage, class) in stages {
            let name = model.layers()[stage].name.clone();
            let cams = block_on(class_activation_maps(
                &model,
                input.clone(),
                Some(&name),
                Target::Class(class),
                CamScore::Logit,
                &Method::CAMS,
            ))
            .unwrap();
            for cam in cams {
                let tag = match cam.method {
                    Method::GradCam => "gradcam",
                    Method::GradCamPlusPlus => "gradcampp",
                    Method::HiResCam => "hirescam",
                    Method::LayerCam => "layercam",
                    _ => unreachable!(),
                };
                let what = format!("{prefix} {} on {name}, class {class}", cam.method);
                assert_close_relative(
                    &what,
                    &cam.raw.values,
                    &trust.values(&format!("{prefix}_{tag}_{stage}_{class}")),
                    TOLERANCE,
                );
                if let Some(weights) = &cam.weights {
                    assert_close_relative(
                        &format!("{what}: weights"),
                        weights,
                        &trust.values(&format!("{prefix}_{tag}w_{stage}_{class}")),
                        TOLERANCE,
                    );
                }
            }
        }
    }
}

/// Integrated gradients against captum's `IntegratedGradients` (Gauss–Legendre and trapezoid
/// rules, black and blurred baselines), and the quadrature nodes against captum's.
fn check_integrated_gradients(device: &Device, trust: &Reference) {
    let parity = Reference::load();
    let model = student(device);
    let input = parity.tensor("st_input", device);
    let pixels = parity.values("st_input");
    let blurred = gaussian_blur(&pixels, [64, 64], 3.0);
    assert_close(
        "blurred baseline",
        &blurred,
        &trust.values("ig_blur_baseline"),
        1e-6,
    );
    let nodes = quadrature(Quadrature::GaussLegendre, 16);
    let alphas: Vec<f32> = nodes.iter().map(|n| n.0 as f32).collect();
    let steps: Vec<f32> = nodes.iter().map(|n| n.1 as f32).collect();
    assert_close(
        "Gauss–Legendre nodes",
        &alphas,
        &trust.values("ig_gl_alphas"),
        1e-7,
    );
    assert_close(
        "Gauss–Legendre weights",
        &steps,
        &trust.values("ig_gl_steps"),
        1e-7,
    );
    // The blur is checked above; integrate from captum's own baseline tensor, since at the
    // sparse student's scale a 1e-7 difference in the baseline moves the trapezoid's end points.
    for (baseline, values) in [
        ("black", vec![0.0f32; 3 * 64 * 64]),
        ("blur", trust.values("ig_blur_baseline")),
    ] {
        let reference_image =
            Tensor::<4>::from_data(TensorData::new(values, [1, 3, 64, 64]), device);
        for (rule, quadrature) in [
            ("gl", Quadrature::GaussLegendre),
            ("trap", Quadrature::Trapezoid),
        ] {
            let plan = IntegratedGradientsPlan {
                steps: 16,
                quadrature,
                baseline: if baseline == "black" {
                    Baseline::Black
                } else {
                    Baseline::Blur
                },
                batch_size: 5,
                ..IntegratedGradientsPlan::default()
            };
            // The trapezoid's first node is the blurred image itself, so smooth that (we believe)
            // neighbouring activations tie to within rounding in the 2×2 max-pools: which of two
            // near-equal values PyTorch and burn pick (both valid subgradients) moves its gradient.
            // Measured: 4e-3 of the largest attribution for class 0; every other case is 1e-4.
            let tolerance = if (baseline, rule) == ("blur", "trap") {
                1e-2
            } else {
                TOLERANCE
            };
            for class in [0, 3] {
                let attribution = block_on(integrated_gradients(
                    &model,
                    input.clone(),
                    reference_image.clone(),
                    class,
                    &plan,
                ))
                .unwrap();
                assert_close_relative(
                    &format!("integrated gradients, {baseline} baseline, {rule}, class {class}"),
                    &attribution.values,
                    &trust.values(&format!("ig_{baseline}_{rule}_{class}")),
                    tolerance,
                );
            }
        }
    }
}

#[test]
fn cam_family_matches_pytorch_grad_cam_on_flex() {
    check_cam_family(&Device::flex(), &Reference::open("trust.safetensors"));
}

#[test]
fn integrated_gradients_match_captum_on_flex() {
    check_integrated_gradients(&Device::flex(), &Reference::open("trust.safetensors"));
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
    let trust = Reference::open("trust.safetensors");
    check_cam_family(&device, &trust);
    check_integrated_gradients(&device, &trust);
}
