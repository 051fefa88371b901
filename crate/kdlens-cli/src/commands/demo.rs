//! `kdlens demo`: the whole method on real data in one command.

use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;
use kdlens::{
    bundle::WeightPrecision,
    distill::DistillConfig,
    explain::{Colormap, DEFAULT_OPACITY, FaithfulnessPlan, Method, Request, ShapPlan},
    image::{Decoded, Normalization},
    model::Architecture,
};

use super::{
    audit::run_audit,
    bench::{BenchSettings, Contender, bench_table, measure},
    common::{DataConfig, prepare},
    distill::{DistillRunConfig, distill_on},
    evaluate::comparison_table,
    explain::{Drawing, backend_name, background, explain_image},
    export::export,
    train_teacher::{TeacherConfig, train_teacher_on},
};
use crate::{
    cli::{AuditArgs, DataArgs, DemoArgs, GlobalArgs},
    data::{DataSource, SplitOptions, augment::Augmentation},
    model_io,
    report::write_png,
    run::RunDir,
    train::TrainConfig,
};

/// Sizes of the demo: `quick` for CI, the default sized for about 15 minutes on 2 CPU cores.
struct DemoPlan {
    train_per_class: usize,
    test_per_class: usize,
    image_size: usize,
    teacher_epochs: usize,
    student_epochs: usize,
    shap_samples: usize,
    bench_runs: usize,
    audit_images: usize,
    sanity_images: usize,
}

impl DemoPlan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                train_per_class: 150,
                test_per_class: 50,
                image_size: 32,
                teacher_epochs: 2,
                student_epochs: 5,
                shap_samples: 16,
                bench_runs: 3,
                audit_images: 20,
                sanity_images: 2,
            }
        } else {
            Self {
                train_per_class: 1000,
                test_per_class: 200,
                image_size: 32,
                teacher_epochs: 3,
                student_epochs: 7,
                shap_samples: 200,
                bench_runs: 7,
                audit_images: 100,
                sanity_images: 8,
            }
        }
    }
}

/// `kdlens demo`.
pub fn run_demo(args: &DemoArgs, global: &GlobalArgs, run: &RunDir, device: &Device) -> Result<()> {
    let started = Instant::now();
    let plan = DemoPlan::new(args.quick);
    let data_config = DataConfig {
        source: DataSource::parse(&args.data)?,
        split: SplitOptions {
            val_fraction: 0.2,
            test_fraction: 0.2,
            limit_per_class: Some(plan.train_per_class),
            test_limit_per_class: Some(plan.test_per_class),
            seed: global.seed,
        },
        image_size: plan.image_size,
        grayscale: true,
        skip_bad_images: false,
        scan: Default::default(),
        // The paper's [0, 1] inputs: the demo's teacher starts from scratch.
        normalize: Normalization::Unit,
    };
    // Clothes are upright: horizontal flips only.
    let augmentation = Augmentation {
        horizontal_flip: true,
        ..Augmentation::none()
    };
    let train = |epochs: usize| TrainConfig {
        epochs,
        batch_size: 64,
        lr: 1e-3,
        patience: 3,
        lr_factor: 0.1,
        early_stop: None,
        augmentation: augmentation.clone(),
        seed: global.seed,
        replicas: crate::train::default_replicas(global.device),
    };
    run.log(format!(
        "kdlens demo{} — outputs in {}",
        if args.quick { " (quick)" } else { "" },
        run.path().display()
    ));
    let data = prepare(&data_config, run)?;

    // 1. teacher
    let teacher_run = RunDir::open(Some(&run.join("teacher")), "teacher")?;
    let teacher_config = TeacherConfig {
        device: global.device,
        data: data_config.clone(),
        train: train(plan.teacher_epochs),
        init: None,
    };
    teacher_run.write_config(&teacher_config)?;
    let teacher_path = train_teacher_on(&teacher_config, &data, &teacher_run, device, false)?;
    let teacher = model_io::load(&teacher_path, device)?;

    // 2. students: distilled and label-only baseline
    let mut students = Vec::new();
    for (folder, point) in [
        ("student-kd", DistillConfig::new(0.7, 10.0)?),
        ("student-labels-only", DistillConfig::new(1.0, 1.0)?),
    ] {
        let student_run = RunDir::open(Some(&run.join(folder)), "distill")?;
        let config = DistillRunConfig {
            device: global.device,
            data: data_config.clone(),
            train: train(plan.student_epochs),
            teacher: teacher_path.clone(),
            student: Architecture::FiveLayer,
            grid: vec![point],
        };
        student_run.write_config(&config)?;
        let (path, mut results) =
            distill_on(&config, &data, &teacher, &student_run, device, false)?;
        students.push((folder, path, results.remove(0)));
    }

    // 3. comparison
    let teacher_eval = super::common::evaluate(
        &teacher.model,
        &data.test,
        &teacher.manifest().preprocessing,
        device,
        data.splits.classes.len(),
    )?;
    let teacher_cost = teacher.manifest().spec.cost();
    let student_cost = Architecture::FiveLayer;
    let student_cost = kdlens::model::ModelSpec::new(
        student_cost,
        data.splits.classes.len(),
        [plan.image_size; 2],
    )?
    .cost();
    let rows = vec![
        (
            "teacher DenseNet-121".to_string(),
            teacher_cost.params(),
            teacher_cost.flops(),
            &teacher_eval,
        ),
        (
            "student KD α=0.7 T=10".to_string(),
            student_cost.params(),
            student_cost.flops(),
            &students[0].2.evaluation,
        ),
        (
            "student labels only (α=1)".to_string(),
            student_cost.params(),
            student_cost.flops(),
            &students[1].2.evaluation,
        ),
    ];
    let comparison = comparison_table(&rows, &data.splits.classes);
    run.write_text("comparison.md", &comparison)?;

    // 4. efficiency table
    let kd_student = model_io::load(&students[0].1, device)?;
    let sample_input = {
        let image = data.splits.test[0]
            .image
            .load(&data_config.scan)
            .map_err(|e| anyhow::anyhow!(e))?;
        teacher.manifest().preprocessing.to_tensor(&image, device)?
    };
    let contenders = vec![
        Contender {
            name: "teacher".into(),
            model: teacher.model.clone(),
            spec: teacher.manifest().spec.clone(),
            input: sample_input.clone(),
        },
        Contender {
            name: "student".into(),
            model: kd_student.model.clone(),
            spec: kd_student.manifest().spec.clone(),
            input: sample_input,
        },
    ];
    let bench = measure(
        &contenders,
        &BenchSettings {
            runs: plan.bench_runs,
            warmup: 2,
            shap_samples: Some(plan.shap_samples),
        },
        device,
        |op| run.log(format!("bench: {op}")),
    )?;
    let bench_md = bench_table(&bench);
    run.write_text("bench.md", &bench_md)?;
    run.write_json("bench.json", &bench)?;

    // 5. explanations of a few test images, and page samples
    let web_model_dir = args
        .web_model_dir
        .clone()
        .unwrap_or_else(|| run.join("web"));
    let samples_dir = web_model_dir.join("samples");
    std::fs::create_dir_all(&samples_dir)
        .with_context(|| format!("cannot create {}", samples_dir.display()))?;
    let request = Request {
        methods: Method::ALL.to_vec(),
        shap: ShapPlan {
            samples: plan.shap_samples,
            seed: global.seed,
            ..ShapPlan::default()
        },
        faithfulness: Some(FaithfulnessPlan::default()),
        ..Request::default()
    };
    let drawing = Drawing {
        colormap: Colormap::default(),
        opacity: DEFAULT_OPACITY,
    };
    let mut sample_names = Vec::new();
    for class in [0usize, 5, 7, 8] {
        let Some(sample) = data.splits.test.iter().find(|s| s.label == class) else {
            continue;
        };
        let image = sample
            .image
            .load(&data_config.scan)
            .map_err(|e| anyhow::anyhow!(e))?;
        let name = data.splits.classes[class]
            .to_lowercase()
            .replace(['/', ' '], "-");
        let png = samples_dir.join(format!("{name}.png"));
        write_png(&png, &image)?;
        sample_names.push(format!("{name}.png"));
        let decoded = Decoded { image, scan: None };
        for (label, model) in [("student", &kd_student), ("teacher", &teacher)] {
            let out = run.join(format!("explain/{name}/{label}"));
            let background = background(model, None, 2, &data_config.scan, device)?;
            explain_image(
                model,
                &decoded,
                &png,
                &request,
                Some(&background),
                drawing,
                &backend_name(global.device),
                device,
                &out,
            )?;
        }
    }

    crate::fsutil::write_atomic(
        &web_model_dir.join("samples.json"),
        &serde_json::to_vec_pretty(&sample_names)?,
    )?;

    // 6. audit: faithfulness, teacher–student agreement, sanity checks
    let audit_run = RunDir::open(Some(&run.join("audit")), "audit")?;
    run_audit(
        &AuditArgs {
            data: DataArgs {
                data: Some(args.data.clone()),
                val_fraction: data_config.split.val_fraction,
                test_fraction: data_config.split.test_fraction,
                limit_per_class: data_config.split.limit_per_class,
                test_limit_per_class: data_config.split.test_limit_per_class,
                image_size: Some(plan.image_size),
                grayscale: data_config.grayscale,
                skip_bad_images: data_config.skip_bad_images,
                scan: Default::default(),
            },
            teacher: teacher_path.clone(),
            students: students.iter().map(|s| s.1.clone()).collect(),
            methods: Method::ALL
                .into_iter()
                .filter(|m| *m != Method::Shap)
                .collect(),
            cam_min_side: 4,
            images: plan.audit_images,
            sanity_images: plan.sanity_images,
            faithfulness_steps: FaithfulnessPlan::default().steps,
            ig_steps: kdlens::explain::IntegratedGradientsPlan::default().steps,
            shap_samples: plan.shap_samples,
            ood: None,
        },
        global,
        &audit_run,
        device,
    )?;
    let audit_md = std::fs::read_to_string(audit_run.join("audit.md"))
        .with_context(|| format!("cannot read {}", audit_run.join("audit.md").display()))?;

    // 7. export for the page
    let export_summary = export(
        &students[0].1,
        &web_model_dir,
        WeightPrecision::Int8,
        Some("Fashion-MNIST five-layer student (KD α=0.7, T=10) — demonstration"),
        Some(&run.join("export")),
        device,
    )?;
    run.write_json("export.json", &export_summary)?;

    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let summary = format!(
        "# kdlens demo\n\nData: {} — {} classes, {} train / {} validation / {} test images at {}×{} (grayscale).\n\
         Wall time: {minutes:.1} min on {}.\n\n## Accuracy\n\n{comparison}\n## Efficiency\n\n{bench_md}\n{}\n",
        data.splits.origin,
        data.splits.classes.len(),
        data.train.len(),
        data.val.len(),
        data.test.len(),
        plan.image_size,
        plan.image_size,
        crate::device::describe(global.device),
        audit_md.replacen(
            "# kdlens audit",
            "## Explanations: faithfulness, agreement, sanity",
            1
        ),
    );
    run.write_text("summary.md", &summary)?;
    println!("{summary}");
    let page_default = web_model_dir.ends_with("www/model");
    println!(
        "Everything is in {}:\n  teacher/, student-kd/, student-labels-only/  training runs (config, log, metrics, curves, checkpoints)\n  \
         comparison.md, bench.md, explain/, audit/  accuracy, efficiency, explanations, their audit\n\
         The page's model is {} ({:.2} MB) with sample images in {}.\n\
         Open the page: bash pkg-scripts/build-web.sh && bash pkg-scripts/serve.sh, then http://127.0.0.1:8000/{}",
        run.path().display(),
        export_summary.bundle.display(),
        export_summary.bundle_bytes as f64 / 1e6,
        samples_dir.display(),
        if page_default {
            ""
        } else {
            " and drop the model file on it\n\
             (or run the demo with --web-model-dir www/model to make it the page's default model)"
        },
    );
    Ok(())
}
