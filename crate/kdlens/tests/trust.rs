//! The trust metrics on models whose answers are known by hand: a linear "classifier" for the
//! deletion and insertion curves, and real networks for the sanity check's randomisation.

use burn::{
    module::Module,
    tensor::{Device, Distribution, Tensor, TensorData},
};
use kdlens::{
    block_on,
    explain::{Context, Method, Request, Target},
    model::{
        Architecture, Classifier, DenseNetConfig, ForwardTrace, LayerInfo, LayeredClassifier,
        ModelSpec,
    },
    trust::{auc, deletion_insertion, parameter_groups, randomized, sanity_check, teacher_request},
};

/// Two classes; the logit of class 0 is `Σ w ⊙ x`, that of class 1 is 0, so
/// `p₀ = sigmoid(Σ w ⊙ x)`.
struct Linear {
    weights: Tensor<4>,
}

impl LayeredClassifier for Linear {
    fn layers(&self) -> Vec<LayerInfo> {
        let [_, c, h, w] = self.weights.dims();
        vec![LayerInfo {
            name: "input".into(),
            channels: c,
            size: [h, w],
        }]
    }
    fn num_classes(&self) -> usize {
        2
    }
    fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        let [batch, _, _, _] = input.dims();
        let score = (input * self.weights.clone())
            .sum_dim(3)
            .sum_dim(2)
            .sum_dim(1)
            .reshape([batch, 1]);
        Tensor::cat(vec![score.clone(), score.zeros_like()], 1)
    }
    fn forward_with_activations(&self, input: Tensor<4>) -> ForwardTrace {
        ForwardTrace {
            logits: self.forward(input.clone()),
            activations: vec![input],
        }
    }
    fn forward_from(
        &self,
        _layer: usize,
        activation: Tensor<4>,
        _earlier: &[Tensor<4>],
    ) -> Tensor<2> {
        self.forward(activation)
    }
}

fn sigmoid(z: f64) -> f32 {
    (1.0 / (1.0 + (-z).exp())) as f32
}

#[test]
fn deletion_and_insertion_of_a_linear_model_follow_the_hand_computed_curves() {
    let (_random, device) = seeded_device(0);
    // A 2×2 image of ones whose pixels contribute 3, −1, 2 and 0.5 to the class-0 logit (all
    // through the red channel).
    let contributions = [3.0f32, -1.0, 2.0, 0.5];
    let mut w = contributions.to_vec();
    w.extend([0.0; 8]);
    let model = Linear {
        weights: Tensor::from_data(TensorData::new(w, [1, 3, 2, 2]), &device),
    };
    let input = vec![1.0f32; 12];
    let zeros = vec![0.0f32; 12];
    // The curves of `saliency` in 4 steps, `batch` images per forward pass.
    let curves = |saliency: &[f32], batch| {
        block_on(deletion_insertion(
            &model,
            &input,
            &zeros,
            &zeros,
            [2, 2],
            saliency,
            0,
            4,
            batch,
            &device,
        ))
        .unwrap()
    };
    // Ranked by the contributions: pixels 0, 2, 3, 1.
    let (deletion, insertion) = curves(&contributions, 3);
    // Deleting 0, 1, 2, 3, 4 pixels leaves logits 4.5, 1.5, −0.5, −1, 0.
    let expected_deletion: Vec<f32> = [4.5, 1.5, -0.5, -1.0, 0.0].map(sigmoid).to_vec();
    // Inserting them into a black image gives 0, 3, 5, 5.5, 4.5.
    let expected_insertion: Vec<f32> = [0.0, 3.0, 5.0, 5.5, 4.5].map(sigmoid).to_vec();
    for (a, b) in deletion.probabilities.iter().zip(&expected_deletion) {
        assert!(
            (a - b).abs() < 1e-6,
            "deletion {:?}",
            deletion.probabilities
        );
    }
    for (a, b) in insertion.probabilities.iter().zip(&expected_insertion) {
        assert!(
            (a - b).abs() < 1e-6,
            "insertion {:?}",
            insertion.probabilities
        );
    }
    assert!((deletion.auc - auc(&expected_deletion)).abs() < 1e-6);
    assert!((insertion.auc - auc(&expected_insertion)).abs() < 1e-6);

    // The reversed ranking is less faithful: higher deletion area, lower insertion area.
    let reversed: Vec<f32> = contributions.iter().map(|c| -c).collect();
    let (worse_deletion, worse_insertion) = curves(&reversed, 8);
    assert!(worse_deletion.auc > deletion.auc && worse_insertion.auc < insertion.auc);

    // A constant map ranks the pixels in position order and is still handled.
    let (flat, _) = curves(&[0.0; 4], 8);
    assert!(
        (flat.probabilities[1] - sigmoid(1.5)).abs() < 1e-6,
        "pixel 0 goes first"
    );

    // Zeros of either sign tie: ranked 2, 0, 1, 3 (position order among the zeros), not 2, 1,
    // 0, 3 (+0 above −0). Deleting leaves logits 4.5, 2.5, −0.5, 0.5, 0; inserting gives 0, 2,
    // 5, 4, 4.5.
    let signed_zeros = [-0.0, 0.0, 5.0, -0.0];
    let (deletion, insertion) = curves(&signed_zeros, 8);
    let expected_deletion = [4.5, 2.5, -0.5, 0.5, 0.0].map(sigmoid);
    let expected_insertion = [0.0, 2.0, 5.0, 4.0, 4.5].map(sigmoid);
    for (curve, expected) in [
        (&deletion, expected_deletion),
        (&insertion, expected_insertion),
    ] {
        for (a, b) in curve.probabilities.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{:?}", curve.probabilities);
        }
        assert!((curve.auc - auc(&expected)).abs() < 1e-6);
    }
}

#[test]
fn explain_reports_faithfulness_for_every_map() {
    let (_random, device) = seeded_device(3);
    let model = student(&device);
    let input = Tensor::<4>::random([1, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
    let request = Request {
        methods: vec![
            Method::GradCam,
            Method::LayerCam,
            Method::IntegratedGradients,
        ],
        faithfulness: Some(Default::default()),
        ..Request::default()
    };
    let report = block_on(kdlens::explain::explain(
        &model,
        input,
        &request,
        &Context::default(),
    ))
    .unwrap();
    assert_eq!(report.faithfulness.len(), 3);
    for f in &report.faithfulness {
        assert_eq!(f.deletion.probabilities.len(), 17);
        assert_eq!(f.class, report.class);
        // At 0 % deleted the deletion curve is the prediction; at 100 % inserted, too.
        let p = report.probabilities[report.class];
        assert!((f.deletion.probabilities[0] - p).abs() < 1e-5);
        assert!((f.insertion.probabilities[16] - p).abs() < 1e-5);
        assert!((0.0..=1.0).contains(&f.deletion.auc) && (0.0..=1.0).contains(&f.insertion.auc));
    }
}

/// The CPU device, its random draws seeded and this test's alone: burn draws from one generator
/// that every test thread shares, so a test holds this lock while it draws weights or inputs.
fn seeded_device(seed: u64) -> (std::sync::MutexGuard<'static, ()>, Device) {
    static RANDOM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = RANDOM
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let device = Device::flex();
    device.seed(seed);
    (guard, device)
}

fn student(device: &Device) -> Classifier {
    ModelSpec::new(Architecture::FiveLayer, 4, [32, 32])
        .unwrap()
        .init(device)
        .unwrap()
        .valid()
}

/// DenseNet-121's stages with one layer per block and few features (fast to build), for four
/// classes at 32² (stages from 16² down to 1²).
fn small_densenet(device: &Device) -> Classifier {
    let small = DenseNetConfig {
        growth_rate: 4,
        block_config: [1, 1, 1, 1],
        num_init_features: 8,
        bn_size: 2,
    };
    ModelSpec::new(Architecture::DenseNet(small), 4, [32, 32])
        .unwrap()
        .init(device)
        .unwrap()
}

fn parameter_values(model: &Classifier) -> Vec<Vec<f32>> {
    let Classifier::FiveLayer(m) = model else {
        panic!("a five-layer student")
    };
    let mut out: Vec<Vec<f32>> = m
        .convs
        .iter()
        .map(|c| c.weight.val().into_data().try_to_vec::<f32>().unwrap())
        .collect();
    out.push(
        m.classifier
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
    );
    out
}

#[test]
fn randomisation_replaces_exactly_the_chosen_groups_and_keeps_their_scale() {
    let (_random, device) = seeded_device(5);
    let model = student(&device);
    let groups = parameter_groups(&model);
    assert_eq!(
        groups,
        [
            "convs.0",
            "convs.1",
            "convs.2",
            "convs.3",
            "convs.4",
            "fc1",
            "fc2",
            "fc3",
            "classifier"
        ]
    );
    let broken = randomized(&model, &groups[4..], 1);
    let (before, after) = (parameter_values(&model), parameter_values(&broken));
    for k in 0..4 {
        assert_eq!(before[k], after[k], "convs.{k} untouched");
    }
    for k in [4, 5] {
        assert_ne!(before[k], after[k], "randomised group {k}");
        let sd = |v: &[f32]| {
            let m = v.iter().sum::<f32>() / v.len() as f32;
            (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
        };
        let ratio = sd(&after[k]) / sd(&before[k]);
        assert!((0.9..1.1).contains(&ratio), "scale kept: {ratio}");
    }
    assert_eq!(
        parameter_values(&randomized(&model, &groups[4..], 1)),
        after,
        "seeded"
    );
    // A group's random weights are drawn once: the same whichever groups are randomised with it
    // (as the cascade descends), and the same when the groups are randomised one at a time.
    let top_only = parameter_values(&randomized(&model, &groups[8..], 1));
    assert_eq!(
        top_only[5], after[5],
        "the classifier keeps its random weights"
    );
    let one_by_one = randomized(&randomized(&model, &groups[8..], 1), &groups[4..8], 1);
    assert_eq!(parameter_values(&one_by_one), after);
    assert_ne!(
        parameter_values(&randomized(&model, &groups[8..], 2))[5],
        after[5],
        "another seed, other weights"
    );

    let dn = small_densenet(&device);
    let groups = parameter_groups(&dn);
    assert_eq!(groups.first().map(String::as_str), Some("features.conv0"));
    assert_eq!(groups.last().map(String::as_str), Some("classifier"));
    assert!(groups.contains(&"features.denseblock4".to_string()));
    assert_eq!(groups.len(), 11, "{groups:?}");
}

#[test]
fn grad_cam_changes_when_the_model_is_randomised() {
    let (_random, device) = seeded_device(7);
    let model = student(&device);
    let input = Tensor::<4>::random([1, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
    let request = Request {
        layer: Some("conv3".into()),
        target: Target::Class(1),
        ..Request::default()
    };
    let check = block_on(sanity_check(
        &model,
        input,
        Method::GradCam,
        &request,
        &Context::default(),
        9,
    ))
    .unwrap();
    assert_eq!(check.class, 1);
    assert_eq!(check.steps.len(), 9);
    assert_eq!(check.steps[0].randomized, "classifier");
    assert_eq!(check.steps[8].randomized, "convs.0");
    assert!(check.passed, "{check:?}");
}

#[test]
fn the_teachers_request_puts_its_maps_on_the_stage_comparable_to_the_models() {
    let (_random, device) = seeded_device(0);
    let student = student(&device);
    let teacher = small_densenet(&device);
    // Student stages at 32²: conv1 32², conv2 16², conv3 8², conv4 4², conv5 2². Teacher:
    // relu0 16², denseblock1 and transition1 8², … transition3 2², denseblock4 and norm5 1².
    let asked = |layer: Option<&str>| Request {
        methods: vec![Method::GradCam, Method::Shap],
        layer: layer.map(String::from),
        target: Target::Class(3),
        ..Request::default()
    };
    for (layer, expected) in [
        (None, "features.transition3"), // the student's default, conv5: 2×2, not norm5's 1×1
        (Some("conv3"), "features.transition1"),
        (Some("conv1"), "features.relu0"), // none as fine as 32²: the first
    ] {
        let request = asked(layer);
        let teacher_request = teacher_request(&request, &student, &teacher).unwrap();
        assert_eq!(
            teacher_request,
            Request {
                layer: Some(expected.into()),
                ..request
            },
            "{layer:?}: only the stage changes"
        );
    }
    let err = teacher_request(&asked(Some("features.norm5")), &student, &teacher).unwrap_err();
    assert!(err.to_string().contains("features.norm5"), "{err}");
}

/// The audit of three images explained by a teacher and two students (the second a copy of the
/// first), one image without a label: its records restate the reports, the summary's statistics
/// and every comparison follow from the records, whatever order they come in.
#[test]
fn the_audit_restates_the_records_and_compares_models_image_by_image() {
    use kdlens::trust::{
        Audit, AuditInput, AuditPlan, AuditedModel, Measure, PairedDifference, Stats, audit_image,
    };
    let (_random, device) = seeded_device(8);
    let (teacher, student) = (small_densenet(&device), student(&device));
    let methods = [Method::GradCam, Method::IntegratedGradients];
    let images: Vec<Tensor<4>> = (0..3)
        .map(|_| Tensor::random([1, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &device))
        .collect();
    let labels = [Some(0usize), None, Some(3)];
    let audited = |name: &str, cam_layer: &str| AuditedModel {
        name: name.into(),
        cam_layer: cam_layer.into(),
        input_size: [32, 32],
    };
    let plan = AuditPlan {
        models: vec![
            audited("teacher", "features.transition3"),
            audited("kd", "conv5"),
            audited("copy", "conv5"),
        ],
        classes: ["a", "b", "c", "d"].map(String::from).to_vec(),
        request: Request {
            methods: methods.to_vec(),
            faithfulness: Some(Default::default()),
            ..Request::default()
        },
    };
    let records: Vec<_> = images
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (image, label))| {
            let inputs = [&teacher, &student, &student]
                .into_iter()
                .map(|model| AuditInput {
                    model,
                    input: image.clone(),
                    context: Context::default(),
                })
                .collect();
            block_on(audit_image(&plan, format!("image-{i}"), label, inputs)).unwrap()
        })
        .collect();
    // Each model explains the label, or without one the teacher's prediction.
    for (record, label) in records.iter().zip(labels) {
        assert_eq!(
            record.class,
            label.unwrap_or(record.models[0].predicted),
            "{}",
            record.image
        );
        assert_eq!((record.models.len(), record.agreements.len()), (3, 2));
    }
    let reversed: Vec<_> = records.iter().rev().cloned().collect();
    let audit = Audit::of(&plan, reversed, &[], 5).unwrap();
    // (As JSON: a class without images has a NaN mean, which equals nothing.)
    let json = |audit: &Audit| serde_json::to_string(audit).unwrap();
    assert_eq!(
        json(&audit),
        json(&Audit::of(&plan, records.clone(), &[], 5).unwrap())
    );
    assert_eq!(audit.images, 3);
    let summary = &audit.summary;

    // Faithfulness: 3 models × 2 methods, each the statistics of its records' areas.
    assert_eq!(summary.faithfulness.len(), 6);
    let deletion = |k: usize, method| -> Vec<f64> {
        records
            .iter()
            .map(|r| {
                let f = r.models[k].faithfulness.iter().find(|f| f.method == method);
                f.unwrap().deletion.auc as f64
            })
            .collect()
    };
    let kd_grad_cam = &summary.faithfulness[2];
    assert_eq!(
        (kd_grad_cam.model.as_str(), kd_grad_cam.method),
        ("kd", Method::GradCam)
    );
    assert_eq!(
        kd_grad_cam.deletion_auc,
        Stats::of(&deletion(1, Method::GradCam))
    );
    assert_eq!(kd_grad_cam.deletion_curve.len(), 17);

    // Agreement per student and method, per class over the images of that class.
    // (Integrated gradients: the untrained models' Grad-CAM maps may be constant, which have
    // no rank correlation.)
    assert_eq!(summary.agreement.len(), 4);
    let kd = &summary.agreement[1];
    assert_eq!(kd.method, Method::IntegratedGradients);
    assert_eq!(kd.spearman.n, 3);
    for (c, name) in plan.classes.iter().enumerate() {
        let images = records.iter().filter(|r| r.class == c).count();
        assert_eq!(kd.per_class[name].0.n, images, "class {name}");
    }
    assert_eq!(summary.predictions.len(), 2);
    assert_eq!(
        serde_json::to_string(&summary.agreement[1]).unwrap(),
        serde_json::to_string(&{
            let mut copy = summary.agreement[3].clone();
            copy.student = "kd".into();
            copy
        })
        .unwrap()
    );

    // Comparisons: kd − copy on two agreement measures per method (identical students: exactly
    // 0, no clear difference), then each student − teacher on deletion and insertion.
    assert_eq!(summary.comparisons.len(), 2 * 2 + 2 * 2 * 2);
    for c in &summary.comparisons[..4] {
        assert_eq!((c.first.as_str(), c.second.as_str()), ("kd", "copy"));
        if let Some(d) = c.difference {
            assert_eq!((d.mean, d.interval), (0.0, [0.0, 0.0]), "{c:?}");
        }
        assert_eq!(c.reading, "no clear difference");
    }
    let kd_deletion = summary
        .comparisons
        .iter()
        .find(|c| {
            c.measure == Measure::DeletionAuc && c.method == Method::GradCam && c.first == "kd"
        })
        .unwrap();
    assert_eq!(kd_deletion.second, "teacher");
    let paired = |k| {
        deletion(k, Method::GradCam)
            .into_iter()
            .map(Some)
            .collect::<Vec<_>>()
    };
    let by_hand = PairedDifference::of(&paired(1), &paired(0), 5);
    assert_eq!(kd_deletion.difference, by_hand);
    let d = by_hand.unwrap();
    assert!(d.interval[0] <= d.mean && d.mean <= d.interval[1] && d.n == 3);

    // Per image and model, a row; no verdicts without an out-of-distribution reference.
    assert_eq!(audit.per_image.len(), 9);
    assert_eq!(audit.per_image[3].model, "kd");
    assert_eq!(audit.per_image[4].label, None);
    assert!(audit.ood.iter().all(|o| o.flagged_test == (0, 0)));
    // A record from another plan is refused.
    let mut short = records[0].clone();
    short.agreements.pop();
    assert!(Audit::of(&plan, vec![short], &[], 5).is_err());

    // Two runs of the same records pooled: every image twice, the same differences, and each
    // run's own beside them; runs of another plan are not pooled.
    use kdlens::trust::{AuditRecords, PooledAudit};
    let run = AuditRecords {
        plan: plan.clone(),
        records: records.clone(),
    };
    let runs = [("seed-1".to_string(), run.clone()), ("seed-2".into(), run)];
    let pooled = PooledAudit::of(&runs, 5).unwrap();
    assert_eq!(pooled.pooled.images, 6);
    assert_eq!(pooled.runs_agree.len(), summary.comparisons.len());
    for (c, (p, runs)) in summary.comparisons.iter().zip(
        pooled
            .pooled
            .summary
            .comparisons
            .iter()
            .zip(&pooled.runs_agree),
    ) {
        let means = |d: Option<PairedDifference>| d.map(|d| (d.mean, d.n));
        assert_eq!(
            means(p.difference).map(|(m, n)| (m, n / 2)),
            means(c.difference)
        );
        assert_eq!(runs.per_run, vec![c.difference, c.difference]);
        let clear = c.difference.is_some_and(|d| d.is_clear());
        assert_eq!((runs.agreeing, runs.opposing), (2 * usize::from(clear), 0));
    }
    let mut other = runs.clone();
    other[1].1.plan.models[1].cam_layer = "conv4".into();
    assert!(PooledAudit::of(&other, 5).is_err());
}

#[test]
fn the_audit_puts_the_teachers_maps_where_the_page_does() {
    use kdlens::trust::{CAM_MIN_SIDE, cam_stages};
    let (_random, device) = seeded_device(0);
    let (teacher, student) = (small_densenet(&device), student(&device));
    // At 32²: the students' deepest 4×4 stage is conv4; the teacher's comparable stage, as
    // teacher_request picks it beside conv4, is transition2 (denseblock2 is 4×4 too, but
    // shallower).
    let stages = cam_stages(&teacher, &[&student, &student], CAM_MIN_SIDE).unwrap();
    assert_eq!(stages, ["features.transition2", "conv4", "conv4"]);
    let beside = teacher_request(
        &Request {
            layer: Some("conv4".into()),
            ..Request::default()
        },
        &student,
        &teacher,
    )
    .unwrap();
    assert_eq!(beside.layer.as_deref(), Some(stages[0].as_str()));
    // Without a student the teacher's own deepest stage with 2 positions per side.
    assert_eq!(
        cam_stages(&teacher, &[], 2).unwrap(),
        ["features.transition3"]
    );
}
