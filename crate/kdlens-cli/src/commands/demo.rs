//! `kdlens demo`: the whole method on real data in one command.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result};
use burn::tensor::Device;
use kdlens::{
    bundle::WeightPrecision,
    distill::DistillConfig,
    explain::{Colormap, DEFAULT_OPACITY, FaithfulnessPlan, Method, Request, ShapPlan},
    image::{Decoded, Normalization},
    model::{Architecture, ModelSpec},
};
use serde::Serialize;

use super::{
    audit::{audit_sections, run_audit},
    bench::{BenchSettings, Contender, bench_table, measure},
    common::{DataConfig, PreparedData, prepare},
    distill::{DistillRunConfig, distill_on},
    evaluate::{Evaluated, comparison_table},
    explain::{Drawing, backend_name, background, explain_image},
    export::{BackgroundSource, ExportSummary, export},
    train_teacher::{TeacherConfig, train_teacher_on},
};
use crate::{
    cli::{AuditArgs, DataArgs, DemoArgs, GlobalArgs},
    data::{DataSource, SplitOptions, augment::Augmentation},
    model_io::{self, LoadedModel},
    report::write_png,
    run::RunDir,
    train::TrainConfig,
};

/// Training images the page's models carry as SHAP's background (three or four per class).
const PAGE_BACKGROUND_IMAGES: usize = 32;

/// The teacher's bundle in the page's model folder.
const PAGE_TEACHER_FILE: &str = "teacher.kdlens";

/// `index.json` of the page's model folder: what the page offers besides its model
/// (`model.kdlens`). `www/app.js` reads it.
#[derive(Serialize)]
struct PageIndex {
    /// The sample images under `samples/`, by file name.
    samples: Vec<String>,
    /// The teacher the page offers to show beside its model, if any.
    teacher: Option<PageTeacher>,
}

/// A teacher bundle in the page's model folder.
#[derive(Serialize)]
struct PageTeacher {
    /// Its file name in the folder.
    file: String,
    /// Its size in bytes (the page says how much it would fetch).
    bytes: u64,
}

/// The page's two bundles as written by the demo.
#[derive(Serialize)]
struct PageExports {
    student: ExportSummary,
    teacher: ExportSummary,
}

/// Sizes of the demo: `quick` for the tests (5.8 minutes on 2 CPU cores), the default (38
/// minutes there; README, "Quick start").
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

    /// The demo's data: `source`, split 60/20/20 with the plan's per-class limits, grayscale
    /// at the plan's size, the paper's [0, 1] inputs (the teacher starts from scratch).
    fn data_config(&self, source: &str, seed: u64) -> Result<DataConfig> {
        Ok(DataConfig {
            source: DataSource::parse(source)?,
            split: SplitOptions {
                val_fraction: 0.2,
                test_fraction: 0.2,
                limit_per_class: Some(self.train_per_class),
                test_limit_per_class: Some(self.test_per_class),
                seed,
            },
            image_size: self.image_size,
            grayscale: true,
            skip_bad_images: false,
            scan: Default::default(),
            normalize: Normalization::Unit,
        })
    }

    /// Training settings of every demo network: Adam 1e-3, batch 64, ×0.1 after 3 stale
    /// epochs, horizontal flips only (clothes are upright).
    fn training(epochs: usize, global: &GlobalArgs) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 64,
            lr: 1e-3,
            patience: 3,
            lr_factor: 0.1,
            early_stop: None,
            augmentation: Augmentation {
                horizontal_flip: true,
                ..Augmentation::none()
            },
            seed: global.seed,
            replicas: crate::train::default_replicas(global.device),
        }
    }
}

/// `kdlens demo`: data, teacher, students, comparison, efficiency, explanations, audit, the
/// page's model, summary — each phase a method of [`Demo`].
pub fn run_demo(args: &DemoArgs, global: &GlobalArgs, run: &RunDir, device: &Device) -> Result<()> {
    let started = Instant::now();
    let plan = DemoPlan::new(args.quick);
    let data_config = plan.data_config(&args.data, global.seed)?;
    run.log(format!(
        "kdlens demo{} — outputs in {}",
        if args.quick { " (quick)" } else { "" },
        run.path().display()
    ));
    let data = prepare(&data_config, run)?;
    let demo = Demo {
        args,
        global,
        run,
        device,
        plan,
        data_config,
        data,
    };
    let (teacher_path, teacher) = demo.train_teacher()?;
    let students = demo.train_students(&teacher_path, &teacher)?;
    let comparison = demo.compare(&teacher, &students)?;
    let kd_student = model_io::load(&students[0].path, device)?;
    let bench_md = demo.measure_efficiency(&teacher, &kd_student)?;
    let web_model_dir = args
        .web_model_dir
        .clone()
        .unwrap_or_else(|| run.join("web"));
    let samples = demo.explain_samples(&teacher, &kd_student, &web_model_dir)?;
    let audit_md = demo.audit(&teacher_path, &students)?;
    let export_summary =
        demo.export_page_models(&students[0].path, &teacher_path, &web_model_dir, samples)?;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    demo.summarise(minutes, &comparison, &bench_md, &audit_md)?;
    let page_default = web_model_dir.ends_with("www/model");
    println!(
        "Everything is in {}:\n  teacher/, student-kd/, student-labels-only/  training runs (config, log, metrics, curves, checkpoints)\n  \
         comparison.md, bench.md, explain/, audit/  accuracy, efficiency, explanations, their audit\n\
         The page's model is {} ({:.2} MB), its teacher {} ({:.2} MB), with sample images in {}.\n\
         Open the page: bash pkg-scripts/build-web.sh && bash pkg-scripts/serve.sh, then http://127.0.0.1:8000/{}",
        run.path().display(),
        export_summary.student.bundle.display(),
        export_summary.student.bundle_bytes as f64 / 1e6,
        export_summary.teacher.bundle.display(),
        export_summary.teacher.bundle_bytes as f64 / 1e6,
        web_model_dir.join("samples").display(),
        if page_default {
            ""
        } else {
            " and drop the model file on it (and the teacher on \"Compare with a teacher\")\n\
             (or run the demo with --web-model-dir www/model to make them the page's default models)"
        },
    );
    Ok(())
}

/// A trained student of the demo.
struct Student {
    /// Its name in the comparison table.
    title: &'static str,
    /// Its model file.
    path: PathBuf,
    /// Its test-set results.
    result: Evaluated,
}

/// What every phase of the demo shares.
struct Demo<'a> {
    args: &'a DemoArgs,
    global: &'a GlobalArgs,
    run: &'a RunDir,
    device: &'a Device,
    plan: DemoPlan,
    data_config: DataConfig,
    data: PreparedData,
}

impl Demo<'_> {
    /// Phase 1: the DenseNet-121 teacher, in `teacher/`; its model file and the model.
    fn train_teacher(&self) -> Result<(PathBuf, LoadedModel)> {
        let teacher_run = RunDir::open(Some(&self.run.join("teacher")), "teacher")?;
        let config = TeacherConfig {
            device: self.global.device,
            data: self.data_config.clone(),
            train: DemoPlan::training(self.plan.teacher_epochs, self.global),
            init: None,
        };
        teacher_run.write_config(&config)?;
        let path = train_teacher_on(&config, &self.data, &teacher_run, self.device, false)?;
        let teacher = model_io::load(&path, self.device)?;
        Ok((path, teacher))
    }

    /// Phase 2: the five-layer students, distilled (α 0.7, T 10) and label-only (α 1), each in
    /// its own folder, in that order.
    fn train_students(&self, teacher_path: &Path, teacher: &LoadedModel) -> Result<Vec<Student>> {
        let mut students = Vec::new();
        for (folder, title, point) in [
            (
                "student-kd",
                "student KD α=0.7 T=10",
                DistillConfig::new(0.7, 10.0)?,
            ),
            (
                "student-labels-only",
                "student labels only (α=1)",
                DistillConfig::new(1.0, 1.0)?,
            ),
        ] {
            let student_run = RunDir::open(Some(&self.run.join(folder)), "distill")?;
            let config = DistillRunConfig {
                device: self.global.device,
                data: self.data_config.clone(),
                train: DemoPlan::training(self.plan.student_epochs, self.global),
                teacher: teacher_path.to_path_buf(),
                student: Architecture::FiveLayer,
                grid: vec![point],
            };
            student_run.write_config(&config)?;
            let (path, mut results) = distill_on(
                &config,
                &self.data,
                teacher,
                &student_run,
                self.device,
                false,
            )?;
            students.push(Student {
                title,
                path,
                result: results.remove(0),
            });
        }
        Ok(students)
    }

    /// Phase 3: the teacher and the students on the test set (`comparison.md`).
    fn compare(&self, teacher: &LoadedModel, students: &[Student]) -> Result<String> {
        let classes = self.data.splits.classes.len();
        let teacher_eval = super::common::evaluate(
            &teacher.model,
            &self.data.test,
            &teacher.manifest().preprocessing,
            self.device,
            classes,
        )?;
        let teacher_cost = teacher.manifest().spec.cost();
        let student_cost =
            ModelSpec::new(Architecture::FiveLayer, classes, [self.plan.image_size; 2])?.cost();
        let mut rows = vec![(
            "teacher DenseNet-121".to_string(),
            teacher_cost.params(),
            teacher_cost.flops(),
            &teacher_eval,
        )];
        for student in students {
            rows.push((
                student.title.to_string(),
                student_cost.params(),
                student_cost.flops(),
                &student.result.evaluation,
            ));
        }
        let comparison = comparison_table(&rows, &self.data.splits.classes);
        self.run.write_text("comparison.md", &comparison)?;
        Ok(comparison)
    }

    /// Phase 4: time and memory of the teacher and the distilled student on one test image
    /// (`bench.md`, `bench.json`).
    fn measure_efficiency(&self, teacher: &LoadedModel, student: &LoadedModel) -> Result<String> {
        let image = self.data.splits.test[0]
            .image
            .load(&self.data_config.scan)
            .map_err(|e| anyhow::anyhow!(e))?;
        let input = teacher
            .manifest()
            .preprocessing
            .to_tensor(&image, self.device)?;
        let contender = |name: &str, model: &LoadedModel| Contender {
            name: name.into(),
            model: model.model.clone(),
            spec: model.manifest().spec.clone(),
            input: input.clone(),
        };
        let bench = measure(
            &[contender("teacher", teacher), contender("student", student)],
            &BenchSettings {
                runs: self.plan.bench_runs,
                warmup: 2,
                shap_samples: Some(self.plan.shap_samples),
            },
            self.device,
            |op| self.run.log(format!("bench: {op}")),
        )?;
        let bench_md = bench_table(&bench);
        self.run.write_text("bench.md", &bench_md)?;
        self.run.write_json("bench.json", &bench)?;
        Ok(bench_md)
    }

    /// Phase 5: every method's explanation of one test image of four classes, by the student
    /// and the teacher (`explain/`), and those images as the page's samples (`samples/` under
    /// `web_model_dir`). Returns the samples' file names.
    fn explain_samples(
        &self,
        teacher: &LoadedModel,
        student: &LoadedModel,
        web_model_dir: &Path,
    ) -> Result<Vec<String>> {
        let samples_dir = web_model_dir.join("samples");
        std::fs::create_dir_all(&samples_dir)
            .with_context(|| format!("cannot create {}", samples_dir.display()))?;
        let request = Request {
            methods: Method::ALL.to_vec(),
            shap: ShapPlan {
                samples: self.plan.shap_samples,
                seed: self.global.seed,
                ..ShapPlan::default()
            },
            faithfulness: Some(FaithfulnessPlan::default()),
            ..Request::default()
        };
        let drawing = Drawing {
            colormap: Colormap::default(),
            opacity: DEFAULT_OPACITY,
        };
        let scan = &self.data_config.scan;
        let mut sample_names = Vec::new();
        for class in [0usize, 5, 7, 8] {
            let Some(sample) = self.data.splits.test.iter().find(|s| s.label == class) else {
                continue;
            };
            let image = sample.image.load(scan).map_err(|e| anyhow::anyhow!(e))?;
            let name = self.data.splits.classes[class]
                .to_lowercase()
                .replace(['/', ' '], "-");
            let png = samples_dir.join(format!("{name}.png"));
            write_png(&png, &image)?;
            sample_names.push(format!("{name}.png"));
            let decoded = Decoded { image, scan: None };
            for (label, model) in [("student", student), ("teacher", teacher)] {
                let background = background(model, None, 2, scan, self.device)?;
                explain_image(
                    model,
                    &decoded,
                    &png,
                    &request,
                    Some(&background),
                    drawing,
                    &backend_name(self.global.device),
                    self.device,
                    &self.run.join(format!("explain/{name}/{label}")),
                )?;
            }
        }
        Ok(sample_names)
    }

    /// Phase 6: the explanations' audit — faithfulness, teacher–student agreement, sanity
    /// checks — in `audit/`; returns its findings as Markdown sections.
    fn audit(&self, teacher_path: &Path, students: &[Student]) -> Result<String> {
        let audit_run = RunDir::open(Some(&self.run.join("audit")), "audit")?;
        let split = &self.data_config.split;
        let result = run_audit(
            &AuditArgs {
                data: DataArgs {
                    data: Some(self.args.data.clone()),
                    val_fraction: split.val_fraction,
                    test_fraction: split.test_fraction,
                    limit_per_class: split.limit_per_class,
                    test_limit_per_class: split.test_limit_per_class,
                    image_size: Some(self.plan.image_size),
                    grayscale: self.data_config.grayscale,
                    skip_bad_images: self.data_config.skip_bad_images,
                    scan: Default::default(),
                },
                teacher: teacher_path.to_path_buf(),
                students: students.iter().map(|s| s.path.clone()).collect(),
                methods: Method::ALL
                    .into_iter()
                    .filter(|m| *m != Method::Shap)
                    .collect(),
                cam_min_side: kdlens::trust::CAM_MIN_SIDE,
                images: self.plan.audit_images,
                sanity_images: self.plan.sanity_images,
                faithfulness_steps: FaithfulnessPlan::default().steps,
                ig_steps: kdlens::explain::IntegratedGradientsPlan::default().steps,
                shap_samples: self.plan.shap_samples,
                ood: None,
            },
            self.global,
            &audit_run,
            self.device,
        )?;
        Ok(audit_sections(&result.audit, Some(&result.sanity)))
    }

    /// Phase 7: the page's model folder `web_model_dir` — the distilled student as its model
    /// (`model.kdlens`, int8, with a safetensors copy in `export/`), the teacher to show beside it
    /// (`teacher.kdlens`, int8), each with [`PAGE_BACKGROUND_IMAGES`] training images as SHAP's
    /// background, and `index.json` listing the samples and the teacher. Both exports are
    /// recorded in `export.json`.
    fn export_page_models(
        &self,
        student: &Path,
        teacher: &Path,
        web_model_dir: &Path,
        samples: Vec<String>,
    ) -> Result<PageExports> {
        let background = BackgroundSource {
            data: &self.data_config,
            count: PAGE_BACKGROUND_IMAGES,
            seed: self.global.seed,
        };
        let student = export(
            student,
            &web_model_dir.join("model.kdlens"),
            WeightPrecision::Int8,
            Some("Fashion-MNIST five-layer student (KD α=0.7, T=10) — demonstration"),
            Some(&self.run.join("export")),
            Some(&background),
            self.device,
        )?;
        let teacher = export(
            teacher,
            &web_model_dir.join(PAGE_TEACHER_FILE),
            WeightPrecision::Int8,
            Some("Fashion-MNIST DenseNet-121 teacher — demonstration"),
            None,
            Some(&background),
            self.device,
        )?;
        let index = PageIndex {
            samples,
            teacher: Some(PageTeacher {
                file: PAGE_TEACHER_FILE.into(),
                bytes: teacher.bundle_bytes,
            }),
        };
        crate::fsutil::write_atomic(
            &web_model_dir.join("index.json"),
            &serde_json::to_vec_pretty(&index)?,
        )?;
        let exports = PageExports { student, teacher };
        self.run.write_json("export.json", &exports)?;
        Ok(exports)
    }

    /// Phase 8: `summary.md` (data, wall time, the three reports), also printed.
    fn summarise(
        &self,
        minutes: f64,
        comparison: &str,
        bench_md: &str,
        audit_md: &str,
    ) -> Result<()> {
        let data = &self.data;
        let size = self.plan.image_size;
        let summary = format!(
            "# kdlens demo\n\nData: {} — {} classes, {} train / {} validation / {} test images at {size}×{size} (grayscale).\n\
             Wall time: {minutes:.1} min on {}.\n\n## Accuracy\n\n{comparison}\n## Efficiency\n\n{bench_md}\n\
             ## Explanations: faithfulness, agreement, sanity\n\n{audit_md}\n",
            data.splits.origin,
            data.splits.classes.len(),
            data.train.len(),
            data.val.len(),
            data.test.len(),
            crate::device::describe(self.global.device),
        );
        self.run.write_text("summary.md", &summary)?;
        println!("{summary}");
        Ok(())
    }
}
