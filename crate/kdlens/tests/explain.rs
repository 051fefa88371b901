//! Explanation operations checked against independent computations.

mod common;

use burn::{
    module::Module,
    tensor::{Device, Distribution, Tensor, TensorData},
};
use common::grad_cam;
use kdlens::{
    block_on,
    explain::{
        CamScore, Context, ExpectedGradients, IntegratedGradientsPlan, Method, Quadrature, Report,
        Request, Target, View, class_activation_maps, expected_gradients, explain, feature_maps,
        integrated_gradients, predict,
    },
    model::{Architecture, Classifier, LayeredClassifier, ModelSpec},
};

fn setup(arch: Architecture, size: usize) -> (Device, Classifier, Tensor<4>) {
    let device = Device::flex();
    device.seed(11);
    let model = ModelSpec::new(arch, 4, [size, size])
        .unwrap()
        .init(&device)
        .unwrap()
        .valid();
    let input = Tensor::<4>::random([1, 3, size, size], Distribution::Uniform(0.0, 1.0), &device);
    (device, model, input)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn feature_maps_are_channel_means_of_the_activations() {
    let (_, model, input) = setup(Architecture::FiveLayer, 64);
    let maps = block_on(feature_maps(&model, input.clone())).unwrap();
    let trace = model.forward_with_activations(input);
    for (k, activation) in trace.activations.iter().enumerate() {
        let [_, c, h, w] = activation.dims();
        let a = values(activation.clone());
        let map = &maps.maps[k];
        assert_eq!(map.size, [h, w]);
        for y in [0, h / 2, h - 1] {
            for x in [0, w - 1] {
                let mean: f32 = (0..c).map(|ch| a[ch * h * w + y * w + x]).sum::<f32>() / c as f32;
                assert!((map.values[y * w + x] - mean).abs() < 1e-5);
            }
        }
    }
}

/// Grad-CAM's channel weights are spatial means of ∂score/∂A; check them against central finite
/// differences of the network run from the stage, and the map against `ReLU(Σ w·A)`.
#[test]
fn grad_cam_matches_finite_differences_of_the_class_score() {
    let (device, model, input) = setup(Architecture::FiveLayer, 32);
    let layer = 3; // conv4: [256, 4, 4]
    let trace = model.forward_with_activations(input.clone());
    let activation = trace.activations[layer].clone();
    let [_, c, h, w] = activation.dims();
    let a = values(activation);
    let class = 2;
    let score = |a: &[f32]| {
        let t = Tensor::<4>::from_data(TensorData::new(a.to_vec(), [1, c, h, w]), &device);
        values(model.forward_from(layer, t, &trace.activations))[class] as f64
    };
    let cam = block_on(grad_cam(
        &model,
        input,
        Some("conv4"),
        Target::Class(class),
        CamScore::Logit,
    ))
    .unwrap();
    let weights = cam.weights.clone().unwrap();
    assert_eq!((cam.class, cam.raw.size, weights.len()), (class, [h, w], c));
    let eps = 1e-2f32;
    for ch in (0..c).step_by(17) {
        let mut weight = 0.0f64;
        for i in 0..h * w {
            let (mut plus, mut minus) = (a.clone(), a.clone());
            plus[ch * h * w + i] += eps;
            minus[ch * h * w + i] -= eps;
            weight += (score(&plus) - score(&minus)) / (2.0 * eps as f64) / (h * w) as f64;
        }
        assert!(
            (weight - weights[ch] as f64).abs() < 1e-3,
            "channel {ch}: finite differences {weight}, autodiff {}",
            weights[ch]
        );
    }
    for i in 0..h * w {
        let sum: f32 = (0..c).map(|ch| weights[ch] * a[ch * h * w + i]).sum();
        assert!((cam.raw.values[i] - sum.max(0.0)).abs() < 1e-4);
    }
}

#[test]
fn predicted_target_explains_the_arg_max_class() {
    let (_, model, input) = setup(Architecture::FiveLayer, 32);
    let probabilities = block_on(predict(&model, input.clone())).unwrap();
    let best = (0..4)
        .max_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
        .unwrap();
    let auto = block_on(grad_cam(
        &model,
        input.clone(),
        None,
        Target::Predicted,
        CamScore::Logit,
    ))
    .unwrap();
    let fixed = block_on(grad_cam(
        &model,
        input,
        None,
        Target::Class(best),
        CamScore::Logit,
    ))
    .unwrap();
    assert_eq!(auto.class, best);
    assert_eq!(auto.raw.layer, "conv5");
    for (a, b) in auto.raw.values.iter().zip(&fixed.raw.values) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn probability_score_scales_logit_weights_by_the_softmax_jacobian() {
    // ∂p_c/∂A = p_c · (∂z_c/∂A − Σ_k p_k ∂z_k/∂A): for two classes with a shared trunk this is
    // p_c(1 − p_c)(∂z_c − ∂z_other)/∂A. Checked here through the weights of both classes.
    let (_, model, input) = setup(Architecture::FiveLayer, 32);
    let p = block_on(predict(&model, input.clone())).unwrap();
    let logit: Vec<Vec<f32>> = (0..4)
        .map(|k| {
            block_on(grad_cam(
                &model,
                input.clone(),
                None,
                Target::Class(k),
                CamScore::Logit,
            ))
            .unwrap()
            .weights
            .unwrap()
        })
        .collect();
    let prob = block_on(grad_cam(
        &model,
        input,
        None,
        Target::Class(1),
        CamScore::Probability,
    ))
    .unwrap();
    for (ch, &weight) in prob.weights.unwrap().iter().enumerate() {
        let mix: f32 = (0..4).map(|k| p[k] * logit[k][ch]).sum();
        let expected = p[1] * (logit[1][ch] - mix);
        assert!((weight - expected).abs() < 1e-5, "{weight} vs {expected}");
    }
}

#[test]
fn one_report_holds_what_the_separate_operations_compute() {
    for arch in [Architecture::FiveLayer, Architecture::Kd8] {
        let (_, model, input) = setup(arch, 64);
        let request = Request {
            methods: Method::CAMS.to_vec(),
            ..Request::default()
        };
        let report = block_on(explain(
            &model,
            input.clone(),
            &request,
            &Context::default(),
        ))
        .unwrap();
        let maps = block_on(feature_maps(&model, input.clone())).unwrap();
        let cams = block_on(class_activation_maps(
            &model,
            input,
            None,
            Target::Predicted,
            CamScore::Logit,
            &Method::CAMS,
        ))
        .unwrap();
        assert_eq!(report.feature_maps.len(), model.layers().len());
        for (ours, theirs) in report.feature_maps.iter().zip(&maps.maps) {
            assert_eq!(
                (&ours.layer, ours.size, &ours.values),
                (&theirs.layer, theirs.size, &theirs.values)
            );
        }
        assert_eq!(report.maps.len(), 4);
        for (map, cam) in report.maps.iter().zip(&cams) {
            assert_eq!(map.method, cam.method);
            assert_eq!(map.values, cam.raw.values);
            assert_eq!(map.channel_weights, cam.weights);
            assert_eq!(map.class, report.predicted);
        }
        assert_eq!(report.class, report.predicted);
        assert!((report.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(report.timings_ms["total"] >= report.timings_ms["forward"]);
        assert_eq!(report.version, kdlens::explain::REPORT_VERSION);
    }
}

#[test]
fn the_report_survives_json_and_renders_every_view() {
    let (device, model, input) = setup(Architecture::FiveLayer, 32);
    let request = Request {
        methods: vec![Method::GradCam, Method::IntegratedGradients, Method::Shap],
        faithfulness: Some(Default::default()),
        ..Request::default()
    };
    request.validate(4).unwrap();
    let context = Context {
        manifest: None,
        background: Some(Tensor::<4>::zeros([2, 3, 32, 32], &device)),
        ..Context::default()
    };
    let report = block_on(explain(&model, input, &request, &context)).unwrap();
    let json = serde_json::to_string(&report).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    assert_eq!(report.views().len(), 5 + 3);
    assert_eq!(report.faithfulness.len(), 3);
    for view in report.views() {
        let rgba = report
            .render(&view, [20, 30], Default::default(), 0.5)
            .unwrap();
        assert_eq!((rgba.width(), rgba.height()), (30, 20));
        let alphas: Vec<u8> = rgba.pixels().chunks_exact(4).map(|p| p[3]).collect();
        match view {
            // signed maps: transparent where the attribution is small, up to the opacity
            View::Method(m) if m.is_signed() => {
                assert!(
                    alphas.iter().all(|&a| a <= 128) && alphas.iter().any(|&a| a > 100),
                    "{m}"
                )
            }
            _ => assert!(alphas.iter().all(|&a| a == 128)),
        }
    }
    assert!(
        report
            .render(&View::FeatureMap(9), [4, 4], Default::default(), 0.5)
            .is_err()
    );
    assert!(
        report
            .render(
                &View::Method(Method::LayerCam),
                [4, 4],
                Default::default(),
                0.5
            )
            .is_err()
    );
    assert_eq!(
        "feature-map:2".parse::<View>().unwrap(),
        View::FeatureMap(2)
    );
    assert_eq!(
        "hires-cam".parse::<View>().unwrap(),
        View::Method(Method::HiResCam)
    );
}

/// Integrated gradients satisfy completeness: with enough Gauss–Legendre nodes the attributions
/// sum to f(x) − f(baseline).
#[test]
fn integrated_gradients_satisfy_completeness() {
    let (device, model, input) = setup(Architecture::FiveLayer, 32);
    let baseline = Tensor::<4>::random([1, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
    let plan = IntegratedGradientsPlan {
        steps: 64,
        quadrature: Quadrature::GaussLegendre,
        batch_size: 16,
        ..IntegratedGradientsPlan::default()
    };
    for class in [0, 3] {
        let attribution = block_on(integrated_gradients(
            &model,
            input.clone(),
            baseline.clone(),
            class,
            &plan,
        ))
        .unwrap();
        let gap = attribution.output - attribution.expected_value;
        let total = attribution.total();
        assert!(
            (total - gap).abs() < 0.01 * gap.abs().max(1e-3),
            "class {class}: Σφ = {total}, f(x) − f(x') = {gap}"
        );
    }
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let (device, model, input) = setup(Architecture::FiveLayer, 32);
    let err = block_on(grad_cam(
        &model,
        input.clone(),
        Some("conv9"),
        Target::Predicted,
        CamScore::Logit,
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("conv9") && err.contains("conv5"), "{err}");
    let err = block_on(grad_cam(
        &model,
        input.clone(),
        None,
        Target::Class(4),
        CamScore::Logit,
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("4 classes"), "{err}");
    let batch = Tensor::<4>::zeros([2, 3, 32, 32], &device);
    assert!(block_on(predict(&model, batch)).is_err());
    let background = Tensor::<4>::zeros([0, 3, 32, 32], &device);
    let plan = ExpectedGradients::seeded(4, 1, 0, 2);
    assert!(block_on(expected_gradients(&model, input, background, &[0], &plan)).is_err());
}

/// With one background image and a midpoint grid of t, expected gradients is integrated
/// gradients, whose completeness is exact up to the quadrature error.
#[test]
fn expected_gradients_satisfy_completeness() {
    let (device, model, input) = setup(Architecture::FiveLayer, 32);
    let background = Tensor::<4>::random([1, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
    let n = 256;
    let plan = ExpectedGradients {
        draws: (0..n).map(|k| (0, (k as f32 + 0.5) / n as f32)).collect(),
        batch_size: 64,
    };
    let result = block_on(expected_gradients(
        &model,
        input,
        background,
        &[0, 3],
        &plan,
    ))
    .unwrap();
    for attribution in &result {
        let gap = attribution.output - attribution.expected_value;
        let total = attribution.total();
        assert!(
            (total - gap).abs() < 0.02 * gap.abs().max(1e-3),
            "class {}: Σφ = {total}, f(x) − E f(b) = {gap}",
            attribution.class
        );
        assert_eq!(attribution.map().size, [32, 32]);
    }
}

#[test]
fn seeded_sampling_is_reproducible_and_in_range() {
    let a = ExpectedGradients::seeded(200, 16, 42, 32);
    let b = ExpectedGradients::seeded(200, 16, 42, 32);
    assert_eq!(a, b);
    assert!(
        a.draws
            .iter()
            .all(|&(i, t)| i < 16 && (0.0..1.0).contains(&t))
    );
    assert_ne!(a, ExpectedGradients::seeded(200, 16, 43, 32));
}
