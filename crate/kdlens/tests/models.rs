//! Architecture facts: parameter counts, compute, shapes, and that every stage can be re-entered.

use burn::{
    module::Module,
    tensor::{Device, Distribution, Tensor},
};
use kdlens::model::{Architecture, DenseNetConfig, LayeredClassifier, ModelSpec, trainable_params};

fn device() -> Device {
    let device = Device::flex();
    device.seed(7);
    device
}

#[test]
fn kd8_has_the_authors_parameter_count_for_four_classes_at_224() {
    let spec = ModelSpec::new(Architecture::Kd8, 4, [224, 224]).unwrap();
    assert_eq!(trainable_params(&spec.init(&device()).unwrap()), 9_861_828);
    assert_eq!(spec.cost().params(), 9_861_828);
}

#[test]
fn densenet121_with_1000_classes_has_torchvisions_parameter_count() {
    let spec = ModelSpec::new(Architecture::densenet121(), 1000, [224, 224]).unwrap();
    assert_eq!(trainable_params(&spec.init(&device()).unwrap()), 7_978_856);
    assert_eq!(spec.cost().params(), 7_978_856);
}

#[test]
fn five_layer_student_counts_match_between_model_and_cost_table() {
    let spec = ModelSpec::new(Architecture::FiveLayer, 4, [224, 224]).unwrap();
    // convs 1,568,576 + head 512·512+512 + 512·256+256 + 256·128+128 + 128·4+4
    assert_eq!(
        spec.cost().params(),
        1_568_576 + 262_656 + 131_328 + 32_896 + 516
    );
    assert_eq!(
        trainable_params(&spec.init(&device()).unwrap()) as u64,
        spec.cost().params()
    );
}

#[test]
fn compute_at_224_matches_the_paper() {
    let student = ModelSpec::new(Architecture::FiveLayer, 4, [224, 224])
        .unwrap()
        .cost();
    // five 3×3 convolutions: 224²·32·27 + 4 · 231,211,008 = 968,196,096 MACs
    assert_eq!(student.conv_macs(), 968_196_096);
    let teacher = ModelSpec::new(Architecture::densenet121(), 1000, [224, 224])
        .unwrap()
        .cost();
    let gmac = teacher.macs() as f64 / 1e9;
    assert!(
        (2.83..2.90).contains(&gmac),
        "DenseNet-121 at 224²: {gmac} GMAC"
    );
    let ratio = teacher.macs() as f64 / student.macs() as f64;
    assert!(ratio > 2.8, "teacher/student compute ratio {ratio}");
}

#[test]
fn stages_have_the_documented_names_channels_and_sizes() {
    let dev = device();
    let student = ModelSpec::new(Architecture::FiveLayer, 3, [64, 96])
        .unwrap()
        .init(&dev)
        .unwrap();
    let layers = student.layers();
    let names: Vec<_> = layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["conv1", "conv2", "conv3", "conv4", "conv5"]);
    assert_eq!(layers[4].channels, 512);
    assert_eq!(layers[4].size, [4, 6]);

    let kd8 = ModelSpec::new(Architecture::Kd8, 4, [224, 224])
        .unwrap()
        .init(&dev)
        .unwrap();
    let sizes: Vec<_> = kd8
        .layers()
        .iter()
        .map(|l| (l.name.clone(), l.size[0]))
        .collect();
    assert_eq!(sizes.last().unwrap(), &("res2".to_string(), 4));
    assert_eq!(sizes[5], ("conv6".to_string(), 7));

    let small = DenseNetConfig {
        growth_rate: 8,
        block_config: [2, 2, 2, 2],
        num_init_features: 16,
        bn_size: 2,
    };
    let dn = ModelSpec::new(Architecture::DenseNet(small), 5, [64, 64])
        .unwrap()
        .init(&dev)
        .unwrap();
    let layers = dn.layers();
    assert_eq!(layers.len(), 9);
    assert_eq!(layers[0].name, "features.relu0");
    assert_eq!(layers[8].name, "features.norm5");
    // 16 + 2·8 = 32 → transition 16 → 32 → 16 → 32 → 16 → 32 (last block, no halving)
    let channels: Vec<_> = layers.iter().map(|l| l.channels).collect();
    assert_eq!(channels, [16, 32, 16, 32, 16, 32, 16, 32, 32]);
    let sizes: Vec<_> = layers.iter().map(|l| l.size[0]).collect();
    assert_eq!(sizes, [32, 16, 16, 8, 8, 4, 4, 2, 2]);
    // The stage comparable to another model's map: the deepest one at least as fine.
    assert_eq!(dn.layer_comparable_to([2, 2]), 8);
    assert_eq!(dn.layer_comparable_to([4, 4]), 6);
    assert_eq!(
        dn.layer_comparable_to([3, 5]),
        4,
        "8×8 is the deepest at least 3×5"
    );
    assert_eq!(
        dn.layer_comparable_to([64, 64]),
        0,
        "none is as fine: the first"
    );
}

/// Running the rest of the network from any stage's activation reproduces the logits, and the
/// activations have the shapes `layers()` announces.
fn check_reentry(spec: ModelSpec) {
    let dev = device();
    let model = spec.init(&dev).unwrap().valid();
    let [h, w] = spec.input_size;
    let input = Tensor::<4>::random([1, 3, h, w], Distribution::Uniform(0.0, 1.0), &dev);
    let trace = model.forward_with_activations(input.clone());
    let reference: Vec<f32> = trace
        .logits
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let plain: Vec<f32> = model
        .forward(input)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    for (a, b) in reference.iter().zip(&plain) {
        assert!(
            (a - b).abs() < 1e-5,
            "forward and traced forward differ: {a} vs {b}"
        );
    }
    for (k, info) in model.layers().iter().enumerate() {
        let dims = trace.activations[k].dims();
        assert_eq!(
            dims,
            [1, info.channels, info.size[0], info.size[1]],
            "{}",
            info.name
        );
        let logits: Vec<f32> = model
            .forward_from(k, trace.activations[k].clone(), &trace.activations)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (a, b) in reference.iter().zip(&logits) {
            assert!((a - b).abs() < 1e-4, "{}: {a} vs {b}", info.name);
        }
    }
}

#[test]
fn five_layer_student_can_resume_from_every_stage() {
    check_reentry(ModelSpec::new(Architecture::FiveLayer, 4, [64, 64]).unwrap());
}

#[test]
fn kd8_student_can_resume_from_every_stage_including_the_residual_block() {
    check_reentry(ModelSpec::new(Architecture::Kd8, 4, [64, 64]).unwrap());
}

#[test]
fn densenet_can_resume_from_every_stage() {
    let small = DenseNetConfig {
        growth_rate: 8,
        block_config: [2, 2, 2, 2],
        num_init_features: 16,
        bn_size: 2,
    };
    check_reentry(ModelSpec::new(Architecture::DenseNet(small), 3, [48, 48]).unwrap());
}

#[test]
fn too_small_inputs_and_single_class_models_are_rejected_with_reasons() {
    let err = ModelSpec::new(Architecture::FiveLayer, 4, [28, 28])
        .unwrap_err()
        .to_string();
    assert!(err.contains("32") && err.contains("28"), "{err}");
    assert!(ModelSpec::new(Architecture::densenet121(), 4, [28, 64]).is_err());
    let err = ModelSpec::new(Architecture::FiveLayer, 1, [64, 64])
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 2 classes"), "{err}");
}
