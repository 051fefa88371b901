//! `kdlens audit`: are the maps faithful, does the student explain like its teacher, do the
//! methods pass the sanity check, and how often does the out-of-distribution check fire — over
//! a seeded, class-stratified sample of the test split.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use burn::tensor::{Device, Tensor};
use kdlens::{
    block_on,
    explain::{
        Context, FaithfulnessPlan, IntegratedGradientsPlan, Method, Request, ShapPlan, Target,
    },
    image::{RgbaImage, decode_file},
    trust::{
        Audit, AuditInput, AuditPlan, AuditRecords, SanityCheck, Stats, audit::MethodFaithfulness,
        audit_image, sanity_check,
    },
};
use serde::Serialize;

use super::{
    common::DataConfig,
    explain::{background, file_safe},
};
use crate::{
    cli::{AuditArgs, GlobalArgs},
    data::{Splits, stratified},
    model_io::{self, LoadedModel},
    report::{Panel, markdown_table, plot_lines},
    run::RunDir,
};

/// Sanity-check results of one model and method.
#[derive(Debug, Clone, Serialize)]
pub struct MethodSanity {
    /// Model name.
    pub model: String,
    /// Method.
    pub method: Method,
    /// Rank correlation with everything randomised.
    pub final_spearman: Stats,
    /// Images that passed.
    pub passed: usize,
    /// Images checked.
    pub checked: usize,
    /// Every cascade.
    pub cascades: Vec<SanityCheck>,
}

/// Everything `audit.json` holds: the core's audit and the sanity checks (left out of the page
/// for their cost).
#[derive(Debug, Clone, Serialize)]
pub struct AuditResult {
    /// Faithfulness, agreement, comparisons, out-of-distribution rates, per image.
    #[serde(flatten)]
    pub audit: Audit,
    /// Sanity checks per model and method.
    pub sanity: Vec<MethodSanity>,
}

/// Image files under `dir`, recursively, sorted.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder)
            .with_context(|| format!("cannot list {}", folder.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `image` as `loaded`'s input, with what its explanations need.
fn audit_input<'a>(
    loaded: &'a LoadedModel,
    image: &RgbaImage,
    background: Option<&Tensor<4>>,
    device: &Device,
) -> Result<AuditInput<'a, kdlens::model::Classifier>> {
    let manifest = loaded.manifest();
    Ok(AuditInput {
        model: &loaded.model,
        input: manifest.preprocessing.to_tensor(image, device)?,
        context: Context {
            manifest: Some(manifest),
            background: background.cloned(),
            ..Context::default()
        },
    })
}

/// `kdlens audit --teacher T --student S… --data DIR`: writes `audit.json`, `audit.md` and the
/// plots to `run`, and returns what they hold.
pub fn run_audit(
    args: &AuditArgs,
    global: &GlobalArgs,
    run: &RunDir,
    device: &Device,
) -> Result<AuditResult> {
    let mut loaded = vec![(
        "teacher".to_string(),
        model_io::load(&args.teacher, device)?,
    )];
    for path in &args.students {
        let name = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| path.display().to_string());
        loaded.push((name, model_io::load(path, device)?));
    }
    let request = Request {
        methods: args.methods.clone(),
        faithfulness: Some(FaithfulnessPlan {
            steps: args.faithfulness_steps,
            ..FaithfulnessPlan::default()
        }),
        integrated_gradients: IntegratedGradientsPlan {
            steps: args.ig_steps,
            seed: global.seed,
            ..IntegratedGradientsPlan::default()
        },
        shap: ShapPlan {
            samples: args.shap_samples,
            seed: global.seed,
            ..ShapPlan::default()
        },
        ..Request::default()
    };
    let plan = AuditPlan::new(
        &loaded
            .iter()
            .map(|(name, l)| (name.as_str(), &l.model, l.manifest()))
            .collect::<Vec<_>>(),
        &request,
        args.cam_min_side,
    )?;
    let teacher = &loaded[0].1;
    let side = teacher.manifest().spec.input_size[0];
    let data = DataConfig::from_args(&args.data, global.seed, side)?;
    let scan = args
        .data
        .scan
        .over(teacher.manifest().preprocessing.scan_options());
    let splits = Splits::load(&data.source, &data.split)?;
    if splits.classes != plan.classes {
        bail!(
            "the data's classes {:?} are not the models' {:?}",
            splits.classes,
            plan.classes
        );
    }
    let chosen = stratified(&splits.test, plan.classes.len(), args.images, global.seed);
    if chosen.is_empty() {
        bail!("the test split is empty");
    }
    let methods = plan.request.methods();
    let backgrounds: Vec<Option<Tensor<4>>> = loaded
        .iter()
        .map(|(_, l)| {
            methods
                .contains(&Method::Shap)
                .then(|| background(l, None, 2, &scan, device))
                .transpose()
        })
        .collect::<Result<_>>()?;
    run.log(format!(
        "audit: {} test images of {} ({} classes), models: {}, methods: {}",
        chosen.len(),
        splits.origin,
        plan.classes.len(),
        plan.models
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        methods
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let mut records = Vec::new();
    let mut images = Vec::new();
    for (i, sample) in chosen.iter().enumerate() {
        let image = sample.image.load(&scan).map_err(|e| anyhow::anyhow!(e))?;
        let inputs = loaded
            .iter()
            .zip(&backgrounds)
            .map(|((_, l), b)| audit_input(l, &image, b.as_ref(), device))
            .collect::<Result<Vec<_>>>()?;
        records.push(block_on(audit_image(
            &plan,
            sample.image.describe(),
            Some(sample.label),
            inputs,
        ))?);
        if (i + 1) % 10 == 0 || i + 1 == chosen.len() {
            run.log(format!(
                "audit: explained {}/{} images",
                i + 1,
                chosen.len()
            ));
        }
        images.push((sample.label, image));
    }

    let mut sanity = Vec::new();
    let sanity_methods: Vec<Method> = methods
        .iter()
        .copied()
        .filter(|m| *m != Method::Shap)
        .collect();
    for (k, (name, model)) in loaded.iter().enumerate() {
        for &method in &sanity_methods {
            let mut cascades = Vec::new();
            for (label, image) in images.iter().take(args.sanity_images) {
                let part = audit_input(model, image, backgrounds[k].as_ref(), device)?;
                cascades.push(block_on(sanity_check(
                    part.model,
                    part.input,
                    method,
                    &plan.request_for(k, Target::Class(*label)),
                    &part.context,
                    global.seed,
                ))?);
            }
            let finals: Vec<f64> = cascades
                .iter()
                .filter_map(|c| c.steps.last().map(|s| s.spearman.unwrap_or(0.0)))
                .collect();
            sanity.push(MethodSanity {
                model: name.clone(),
                method,
                final_spearman: Stats::of(&finals),
                passed: cascades.iter().filter(|c| c.passed).count(),
                checked: cascades.len(),
                cascades,
            });
        }
        run.log(format!("audit: sanity checks of {name} done"));
    }

    let ood_images: Vec<RgbaImage> = match &args.ood {
        Some(dir) => image_files(dir)?
            .into_iter()
            .filter_map(|p| decode_file(&p).ok())
            .collect(),
        None => Vec::new(),
    };
    let mut outside = Vec::new();
    for (_, model) in &loaded {
        let mut verdicts = Vec::new();
        for image in &ood_images {
            let input = model.manifest().preprocessing.to_tensor(image, device)?;
            verdicts.push(block_on(kdlens::explain::assess_input(
                &model.model,
                input,
                model.manifest(),
            ))?);
        }
        outside.push(verdicts);
    }

    run.write_json(
        "records.json",
        &AuditRecords {
            plan: plan.clone(),
            records: records.clone(),
        },
    )?;
    let result = AuditResult {
        audit: Audit::of(&plan, records, &outside, global.seed)?,
        sanity,
    };
    run.write_json("audit.json", &result)?;
    write_plots(&result, run)?;
    let markdown = audit_markdown(&result);
    run.write_text("audit.md", &markdown)?;
    println!("{markdown}");
    run.log(format!("audit written to {}", run.path().display()));
    Ok(result)
}

fn write_plots(result: &AuditResult, run: &RunDir) -> Result<()> {
    let models: Vec<&String> = result.audit.explain_ms.keys().collect();
    for model in models {
        let rows: Vec<&MethodFaithfulness> = result
            .audit
            .summary
            .faithfulness
            .iter()
            .filter(|f| &f.model == model)
            .collect();
        let curve = |values: &[f64]| {
            let steps = values.len().saturating_sub(1).max(1) as f64;
            values
                .iter()
                .enumerate()
                .map(|(i, &v)| (i as f64 / steps, v))
                .collect::<Vec<_>>()
        };
        let panel = |title: &str, pick: fn(&MethodFaithfulness) -> &Vec<f64>| Panel {
            title: format!("{model}: {title}"),
            x_label: "share of pixels changed, most important first".into(),
            y_range: 0.0..1.0,
            series: rows
                .iter()
                .map(|r| (r.method.name().to_string(), curve(pick(r))))
                .collect(),
        };
        plot_lines(
            &[
                panel("deletion (lower is better)", |r| &r.deletion_curve),
                panel("insertion (higher is better)", |r| &r.insertion_curve),
            ],
            &run.join(format!("faithfulness_{}.png", file_safe(model))),
        )?;
    }
    let bins = 20;
    let histogram = |values: &[f64]| {
        let mut counts = vec![0usize; bins];
        for v in values {
            let b = (((v + 1.0) / 2.0 * bins as f64) as usize).min(bins - 1);
            counts[b] += 1;
        }
        counts
            .iter()
            .enumerate()
            .map(|(b, &c)| {
                (
                    -1.0 + (b as f64 + 0.5) * 2.0 / bins as f64,
                    c as f64 / values.len().max(1) as f64,
                )
            })
            .collect::<Vec<_>>()
    };
    let students: Vec<String> = result
        .audit
        .summary
        .predictions
        .iter()
        .map(|p| p.student.clone())
        .collect();
    let panels: Vec<Panel> = students
        .iter()
        .map(|student| Panel {
            title: format!("teacher vs {student}"),
            x_label: "Spearman rank correlation of the maps".into(),
            y_range: 0.0..1.0,
            series: result
                .audit
                .summary
                .agreement
                .iter()
                .filter(|a| &a.student == student)
                .map(|a| (a.method.name().to_string(), histogram(&a.values)))
                .collect(),
        })
        .collect();
    plot_lines(&panels, &run.join("agreement.png"))
}

/// The audit as a Markdown document.
pub fn audit_markdown(result: &AuditResult) -> String {
    format!(
        "# kdlens audit\n\n{}",
        audit_sections(&result.audit, Some(&result.sanity))
    )
}

/// The audit's findings as Markdown sections, without a title.
pub fn audit_sections(audit: &Audit, sanity: Option<&[MethodSanity]>) -> String {
    let faithfulness = markdown_table(
        &["model", "method", "deletion AUC ↓", "insertion AUC ↑"],
        &audit
            .summary
            .faithfulness
            .iter()
            .map(|f| {
                vec![
                    f.model.clone(),
                    f.method.name().into(),
                    f.deletion_auc.show(3),
                    f.insertion_auc.show(3),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let agreement = markdown_table(
        &[
            "student",
            "method",
            "Spearman ρ with the teacher",
            "top-10 % IoU",
        ],
        &audit
            .summary
            .agreement
            .iter()
            .map(|a| {
                vec![
                    a.student.clone(),
                    a.method.name().into(),
                    a.spearman.show(3),
                    a.top_iou.show(3),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let predictions = markdown_table(
        &[
            "student",
            "same prediction as the teacher",
            "KL(teacher ‖ student), nats",
        ],
        &audit
            .summary
            .predictions
            .iter()
            .map(|p| {
                vec![
                    p.student.clone(),
                    format!("{:.1} %", 100.0 * p.same_prediction),
                    p.kl_divergence.show(3),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let comparisons = markdown_table(
        &[
            "measure",
            "method",
            "first − second",
            "difference [95 % interval]",
            "reading",
        ],
        &audit
            .summary
            .comparisons
            .iter()
            .map(|c| {
                vec![
                    c.measure.label().into(),
                    c.method.name().into(),
                    format!("{} − {}", c.first, c.second),
                    c.difference
                        .map_or_else(|| "—".into(), |d| format!("{} (n = {})", d.show(3), d.n)),
                    c.reading.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let first = audit.summary.agreement.first().map(|a| a.method);
    let per_class = markdown_table(
        &["class", "student", "Spearman ρ", "top-10 % IoU"],
        &audit
            .summary
            .agreement
            .iter()
            .filter(|a| Some(a.method) == first)
            .flat_map(|a| {
                a.per_class.iter().map(|(class, (rho, iou))| {
                    vec![class.clone(), a.student.clone(), rho.show(2), iou.show(2)]
                })
            })
            .collect::<Vec<_>>(),
    );
    let sanity = match sanity {
        Some(sanity) => markdown_table(
            &[
                "model",
                "method",
                "ρ after randomising every layer",
                "passed",
            ],
            &sanity
                .iter()
                .map(|s| {
                    vec![
                        s.model.clone(),
                        s.method.name().into(),
                        s.final_spearman.show(2),
                        format!("{}/{}", s.passed, s.checked),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        None => "Not run here.\n".into(),
    };
    let ood = markdown_table(
        &[
            "model",
            "test images flagged",
            "--ood images flagged",
            "explanation time per image",
        ],
        &audit
            .ood
            .iter()
            .map(|o| {
                let share = |(f, n): (usize, usize)| {
                    if n == 0 {
                        "—".to_string()
                    } else {
                        format!("{f}/{n}")
                    }
                };
                vec![
                    o.model.clone(),
                    share(o.flagged_test),
                    share(o.flagged_ood),
                    audit
                        .explain_ms
                        .get(&o.model)
                        .map(|s| format!("{} ms", s.show(1)))
                        .unwrap_or_default(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    format!(
        "{} test images ({} classes), each explained for its true class; mean ± standard deviation. \
         CAM stages: {}.\n\n\
         ## Faithfulness (deletion / insertion, {} steps)\n\n{faithfulness}\n\
         ## Does the student explain like its teacher?\n\n{agreement}\n{predictions}\n\
         Per class ({}):\n\n{per_class}\n\
         ## Comparisons\n\nEach difference is taken image by image over the same images, with a \
         percentile-bootstrap {}-resample 95 % interval; where the interval contains 0 the \
         audit does not support a difference.\n\n{comparisons}\n\
         ## Sanity check (cascading randomisation, passes below ρ = {})\n\n{sanity}\n\
         ## Out-of-distribution check and time\n\n{ood}",
        audit.images,
        audit.classes.len(),
        audit
            .cam_layers
            .iter()
            .map(|(model, layer)| format!("{model} `{layer}`"))
            .collect::<Vec<_>>()
            .join(", "),
        audit.request.faithfulness.as_ref().map_or(0, |f| f.steps),
        first.map_or("—", |m| m.name()),
        kdlens::trust::stats::BOOTSTRAP_RESAMPLES,
        kdlens::trust::SANITY_THRESHOLD,
    )
}
