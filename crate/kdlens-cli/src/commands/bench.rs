//! `kdlens bench`: the paper's efficiency table (parameters, FLOPs, mean execution time).

use std::time::Instant;

use anyhow::{Result, ensure};
use burn::tensor::{Device, Distribution, Tensor};
use kdlens::{
    block_on,
    explain::{
        CamScore, Context, ExpectedGradients, Method, Request, Target, class_activation_maps,
        expected_gradients, explain, feature_maps, predict,
    },
    image::decode_file,
    model::{Architecture, Classifier, ModelSpec},
};
use serde::Serialize;

use crate::{
    cli::{BenchArgs, GlobalArgs},
    device::describe,
    model_io,
    report::markdown_table,
    run::RunDir,
};

/// One model under test.
pub struct Contender {
    /// Row label.
    pub name: String,
    /// The network, in inference mode.
    pub model: Classifier,
    /// Its spec (for parameters and FLOPs).
    pub spec: ModelSpec,
    /// Input `[1, 3, H, W]`.
    pub input: Tensor<4>,
}

/// Timings of one operation on one model.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Operation name.
    pub operation: String,
    /// Every timed run, milliseconds.
    pub runs_ms: Vec<f64>,
    /// Median, milliseconds.
    pub median_ms: f64,
}

/// A model's row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// Model label.
    pub model: String,
    /// Architecture.
    pub architecture: String,
    /// Input `[H, W]`.
    pub input_size: [usize; 2],
    /// Trainable parameters.
    pub params: u64,
    /// FLOPs of one forward pass.
    pub flops: u64,
    /// One entry per operation.
    pub timings: Vec<Timing>,
}

/// Settings of a benchmark.
pub struct BenchSettings {
    /// Timed runs (median reported).
    pub runs: usize,
    /// Untimed warm-up runs.
    pub warmup: usize,
    /// SHAP samples (`None` skips SHAP).
    pub shap_samples: Option<usize>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Runs one operation on a contender, returning its wall-clock milliseconds.
fn run_operation(
    operation: &str,
    c: &Contender,
    shap_samples: usize,
    device: &Device,
) -> Result<f64> {
    let started = Instant::now();
    match operation {
        "prediction" => {
            block_on(predict(&c.model, c.input.clone()))?;
        }
        "feature maps (all layers)" => {
            block_on(feature_maps(&c.model, c.input.clone()))?;
        }
        "Grad-CAM (last layer)" => {
            block_on(class_activation_maps(
                &c.model,
                c.input.clone(),
                None,
                Target::Predicted,
                CamScore::Logit,
                &[Method::GradCam],
            ))?;
        }
        "full explanation (prediction + maps + Grad-CAM)" => {
            block_on(explain(
                &c.model,
                c.input.clone(),
                &Request::default(),
                &Context::default(),
            ))?;
        }
        "SHAP (expected gradients)" => {
            let [h, w] = c.spec.input_size;
            let background =
                Tensor::<4>::random([16, 3, h, w], Distribution::Uniform(0.0, 1.0), device);
            let plan = ExpectedGradients::seeded(shap_samples, 16, 1, 16);
            block_on(expected_gradients(
                &c.model,
                c.input.clone(),
                background,
                &[0],
                &plan,
            ))?;
        }
        other => unreachable!("unknown operation {other}"),
    }
    Ok(started.elapsed().as_secs_f64() * 1e3)
}

/// Times every operation on every contender, interleaving the contenders run by run so that
/// drifts of the machine affect them alike.
pub fn measure(
    contenders: &[Contender],
    settings: &BenchSettings,
    device: &Device,
    on_progress: impl Fn(&str),
) -> Result<Vec<BenchRow>> {
    ensure!(settings.runs > 0, "--runs must be at least 1");
    let mut operations = vec![
        "prediction",
        "feature maps (all layers)",
        "Grad-CAM (last layer)",
        "full explanation (prediction + maps + Grad-CAM)",
    ];
    if settings.shap_samples.is_some() {
        operations.push("SHAP (expected gradients)");
    }
    let samples = settings.shap_samples.unwrap_or(0);
    let mut rows: Vec<BenchRow> = contenders
        .iter()
        .map(|c| {
            let cost = c.spec.cost();
            BenchRow {
                model: c.name.clone(),
                architecture: c.spec.architecture.name(),
                input_size: c.spec.input_size,
                params: cost.params(),
                flops: cost.flops(),
                timings: Vec::new(),
            }
        })
        .collect();
    for operation in operations {
        on_progress(operation);
        // SHAP is long: fewer repetitions.
        let (warmup, runs) = if operation.starts_with("SHAP") {
            (settings.warmup.min(1), settings.runs.min(3))
        } else {
            (settings.warmup, settings.runs)
        };
        let mut times = vec![Vec::new(); contenders.len()];
        for r in 0..warmup + runs {
            for (i, c) in contenders.iter().enumerate() {
                let ms = run_operation(operation, c, samples, device)?;
                if r >= warmup {
                    times[i].push(ms);
                }
            }
        }
        for (row, runs_ms) in rows.iter_mut().zip(times) {
            row.timings.push(Timing {
                operation: operation.to_string(),
                median_ms: median(&runs_ms),
                runs_ms,
            });
        }
    }
    Ok(rows)
}

/// The table: one column per model, ratios against the first.
pub fn bench_table(rows: &[BenchRow]) -> String {
    let mut header: Vec<String> = vec!["".into()];
    header.extend(
        rows.iter()
            .map(|r| format!("{} ({}, {}²)", r.model, r.architecture, r.input_size[0])),
    );
    if rows.len() == 2 {
        header.push(format!("{} / {}", rows[0].model, rows[1].model));
    }
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}×", a / b)
        } else {
            "–".into()
        }
    };
    let mut table_rows = vec![
        {
            let mut row = vec!["parameters".to_string()];
            row.extend(
                rows.iter()
                    .map(|r| format!("{:.3} M", r.params as f64 / 1e6)),
            );
            if rows.len() == 2 {
                row.push(ratio(rows[0].params as f64, rows[1].params as f64));
            }
            row
        },
        {
            let mut row = vec!["FLOPs per image".to_string()];
            row.extend(
                rows.iter()
                    .map(|r| format!("{:.3} G", r.flops as f64 / 1e9)),
            );
            if rows.len() == 2 {
                row.push(ratio(rows[0].flops as f64, rows[1].flops as f64));
            }
            row
        },
    ];
    for (k, timing) in rows[0].timings.iter().enumerate() {
        let mut row = vec![format!("{} (median ms)", timing.operation)];
        row.extend(rows.iter().map(|r| {
            let t = &r.timings[k];
            if k == 0 {
                format!(
                    "{:.2} ({:.1} GFLOP/s)",
                    t.median_ms,
                    r.flops as f64 / t.median_ms / 1e6
                )
            } else {
                format!("{:.2}", t.median_ms)
            }
        }));
        if rows.len() == 2 {
            row.push(ratio(
                rows[0].timings[k].median_ms,
                rows[1].timings[k].median_ms,
            ));
        }
        table_rows.push(row);
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    markdown_table(&header, &table_rows)
}

fn input_for(
    spec: &ModelSpec,
    images: &[std::path::PathBuf],
    loaded: Option<&model_io::LoadedModel>,
    device: &Device,
) -> Result<Tensor<4>> {
    let [h, w] = spec.input_size;
    match (images.first(), loaded) {
        (Some(path), Some(loaded)) => {
            let image =
                decode_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok(loaded.manifest().preprocessing.to_tensor(&image, device)?)
        }
        _ => Ok(Tensor::<4>::random(
            [1, 3, h, w],
            Distribution::Uniform(0.0, 1.0),
            device,
        )),
    }
}

/// `kdlens bench`.
pub fn run_bench(
    args: &BenchArgs,
    global: &GlobalArgs,
    run: &RunDir,
    device: &Device,
) -> Result<()> {
    device.seed(global.seed);
    let mut contenders = Vec::new();
    if let Some(size) = args.synthetic {
        for (name, arch) in [
            ("teacher", Architecture::densenet121()),
            ("student", Architecture::FiveLayer),
        ] {
            let spec = ModelSpec::new(arch, 4, [size, size])?;
            let model = spec.init(device)?;
            let input = input_for(&spec, &args.images, None, device)?;
            contenders.push(Contender {
                name: name.into(),
                model: burn::module::Module::valid(&model),
                spec,
                input,
            });
        }
    } else {
        for (name, path) in [("teacher", &args.teacher), ("student", &args.student)] {
            let Some(path) = path else {
                anyhow::bail!("give --teacher and --student model files, or --synthetic SIZE");
            };
            let loaded = model_io::load(path, device)?;
            let spec = loaded.manifest().spec.clone();
            let input = input_for(&spec, &args.images, Some(&loaded), device)?;
            contenders.push(Contender {
                name: name.into(),
                model: loaded.model,
                spec,
                input,
            });
        }
    }
    let settings = BenchSettings {
        runs: args.runs,
        warmup: args.warmup,
        shap_samples: (!args.no_shap).then_some(args.shap_samples),
    };
    let rows = measure(&contenders, &settings, device, |op| {
        run.log(format!("measuring {op}"))
    })?;
    let table = bench_table(&rows);
    let header = format!(
        "Device: {}; batch 1; median of {} runs after {} warm-up runs, teacher and student interleaved; SHAP: {} samples, 16 background images.\n\n",
        describe(global.device),
        args.runs,
        args.warmup,
        args.shap_samples
    );
    run.write_text("bench.md", &format!("{header}{table}"))?;
    run.write_json("bench.json", &rows)?;
    println!("{header}{table}");
    Ok(())
}
