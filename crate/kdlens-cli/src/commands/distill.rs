//! `kdlens distill`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use kdlens::{
    distill::DistillConfig,
    model::{Architecture, ModelSpec},
};
use serde::{Deserialize, Serialize};

use super::{
    common::{DataConfig, PreparedData, manifest_for, prepare},
    evaluate::{Evaluated, evaluate_and_save},
    training_config,
};
use crate::{
    cli::{DeviceArg, DistillArgs, GlobalArgs, StudentArg},
    model_io,
    report::markdown_table,
    run::{RunDir, read_config},
    train::{FitRequest, Objective, TrainConfig, fit},
};

/// Everything that defines a distillation run (its `config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillRunConfig {
    /// Device the run used.
    pub device: DeviceArg,
    /// Data settings (the input size is the teacher's).
    pub data: DataConfig,
    /// Optimisation settings.
    pub train: TrainConfig,
    /// The teacher model file.
    pub teacher: PathBuf,
    /// Student architecture.
    pub student: Architecture,
    /// α and T of every student to train (one for a single run, the grid for a sweep).
    pub grid: Vec<DistillConfig>,
}

/// Parses `--sweep alpha=0.4,0.7 --sweep temperature=5,10` into the grid.
fn grid(args: &DistillArgs) -> Result<Vec<DistillConfig>> {
    let mut alphas = vec![args.alpha.unwrap_or(0.7)];
    let mut temperatures = vec![args.temperature.unwrap_or(10.0)];
    for item in &args.sweep {
        for part in item.split_whitespace() {
            let (key, values) = part.split_once('=').with_context(|| {
                format!("--sweep {part:?}: expected KEY=V1,V2 (alpha or temperature)")
            })?;
            let values: Vec<f64> = values
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .with_context(|| format!("--sweep {part:?}: {v:?} is not a number"))
                })
                .collect::<Result<_>>()?;
            match key {
                "alpha" | "a" => alphas = values,
                "temperature" | "t" | "T" => temperatures = values,
                other => bail!("--sweep key {other:?}: use alpha or temperature"),
            }
        }
    }
    let mut grid = Vec::new();
    for &alpha in &alphas {
        for &temperature in &temperatures {
            grid.push(DistillConfig::new(alpha, temperature)?);
        }
    }
    Ok(distinct_points(&grid))
}

/// The grid with each student once: with α = 1 the temperature plays no part, so there is one
/// label-only student, not one per temperature (they shared a folder, and the second stopped
/// the sweep); a value given twice is trained once. Applied to grids from flags and to grids
/// read from older runs' config files alike.
fn distinct_points(grid: &[DistillConfig]) -> Vec<DistillConfig> {
    let mut distinct: Vec<DistillConfig> = Vec::new();
    for point in grid {
        if !distinct.iter().any(|p| point_name(p) == point_name(point)) {
            distinct.push(*point);
        }
    }
    distinct
}

/// Resolves flags (or `--config`, or the resumed run's config) into a configuration.
pub fn resolve(args: &DistillArgs, global: &GlobalArgs) -> Result<DistillRunConfig> {
    if let Some(dir) = &args.train.resume {
        return read_config(&dir.join("config.toml"));
    }
    if let Some(path) = &args.train.config {
        return read_config(path);
    }
    let Some(teacher) = &args.teacher else {
        bail!("--teacher is required: the .kdlens file written by `kdlens train-teacher`");
    };
    Ok(DistillRunConfig {
        device: global.device,
        data: DataConfig::from_args(&args.data, global.seed, 0)?,
        train: training_config(&args.train, TrainConfig::paper(global.seed), global.device),
        teacher: teacher.clone(),
        student: match args.student.unwrap_or(StudentArg::FiveLayer) {
            StudentArg::FiveLayer => Architecture::FiveLayer,
            StudentArg::Kd8 => Architecture::Kd8,
        },
        grid: grid(args)?,
    })
}

/// Folder name of one grid point.
fn point_name(point: &DistillConfig) -> String {
    if point.alpha >= 1.0 {
        "labels-only".into()
    } else {
        format!("alpha{}-t{}", point.alpha, point.temperature)
    }
}

/// Runs the distillation(s); returns the chosen student's model file and every grid point's
/// result.
pub fn distill(
    config: &DistillRunConfig,
    run: &RunDir,
    device: &Device,
    resume: bool,
) -> Result<(PathBuf, Vec<Evaluated>)> {
    let teacher = model_io::load(&config.teacher, device)?;
    let mut config = config.clone();
    let teacher_size = teacher.manifest().spec.input_size;
    if config.data.image_size == 0 {
        config.data.image_size = teacher_size[0];
    }
    ensure!(
        [config.data.image_size; 2] == teacher_size,
        "the student is trained on the teacher's inputs: use --image-size {} (the teacher's)",
        teacher_size[0]
    );
    let taught = &teacher.manifest().preprocessing;
    config.data.grayscale = taught.color == kdlens::image::ColorMode::Grayscale;
    // The student is fed the teacher's inputs, normalised as the teacher's were (it inherits
    // the teacher's preprocessing); recorded here so that the run's config says so.
    if let Some(normalize) = kdlens::image::Normalization::from_mean_std(taught.mean, taught.std) {
        config.data.normalize = normalize;
    }
    // The student sees scans as the teacher did, except where a flag chose otherwise.
    config.data.scan = config.data.scan.or_defaults_from(taught.scan_options());
    run.write_config(&config)?;
    let data = prepare(&config.data, run)?;
    distill_on(&config, &data, &teacher, run, device, resume)
}

/// [`distill`] on data and a teacher already loaded.
pub fn distill_on(
    config: &DistillRunConfig,
    data: &PreparedData,
    teacher: &model_io::LoadedModel,
    run: &RunDir,
    device: &Device,
    resume: bool,
) -> Result<(PathBuf, Vec<Evaluated>)> {
    ensure!(
        teacher.manifest().classes == data.splits.classes,
        "the teacher {} knows the classes {:?} but the data has {:?}",
        config.teacher.display(),
        teacher.manifest().classes,
        data.splits.classes
    );
    let preprocessing = teacher.manifest().preprocessing.clone();
    let spec = ModelSpec::new(
        config.student.clone(),
        data.splits.classes.len(),
        preprocessing.input_size,
    )?;
    let mut results: Vec<Evaluated> = Vec::new();
    let grid = distinct_points(&config.grid);
    for point in &grid {
        let name = point_name(point);
        let point_run = if grid.len() == 1 {
            None
        } else {
            Some(RunDir::open(Some(&run.join(&name)), "distill")?)
        };
        let point_run = point_run.as_ref().unwrap_or(run);
        run.log(format!(
            "training student {name} ({})",
            spec.architecture.name()
        ));
        let manifest = manifest_for(
            format!(
                "{} student ({})",
                spec.architecture.name(),
                if point.alpha >= 1.0 {
                    "labels only".to_string()
                } else {
                    format!("KD α={} T={}", point.alpha, point.temperature)
                }
            ),
            spec.clone(),
            &data.splits,
            preprocessing.clone(),
            serde_json::json!({ "run": config, "alpha": point.alpha, "temperature": point.temperature }),
            config.train.seed,
        );
        let objective = if point.alpha >= 1.0 {
            Objective::Labels
        } else {
            Objective::Distill {
                teacher: &teacher.model,
                config: *point,
            }
        };
        let outcome = fit(FitRequest {
            spec: spec.clone(),
            initial: None,
            train: &data.train,
            val: &data.val,
            preprocessing: &preprocessing,
            objective,
            config: &config.train,
            device,
            run: point_run,
            manifest: manifest.clone(),
            resume,
            replicas: crate::device::replicas(config.device, device, config.train.replicas)?,
        })?;
        let (evaluation, path) = evaluate_and_save(
            &outcome.model,
            data,
            &preprocessing,
            device,
            "student",
            point_run,
            manifest,
        )?;
        let val_accuracy = outcome
            .history
            .iter()
            .find(|r| r.epoch == outcome.best_epoch)
            .map(|r| r.val_accuracy)
            .unwrap_or(0.0);
        run.log(format!(
            "student {name}: test accuracy {:.4}, macro F1 {:.4}, validation accuracy {:.4} → {}",
            evaluation.report.accuracy,
            evaluation.report.macro_avg.f1,
            val_accuracy,
            path.display()
        ));
        results.push(Evaluated {
            name,
            path,
            evaluation,
            val_accuracy,
        });
    }
    let best = results
        .iter()
        .max_by(|a, b| a.val_accuracy.total_cmp(&b.val_accuracy))
        .expect("the grid is not empty");
    let chosen = best.path.clone();
    if results.len() > 1 {
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    format!("{:.4}", r.val_accuracy),
                    format!("{:.4}", r.evaluation.report.accuracy),
                    format!("{:.4}", r.evaluation.report.macro_avg.f1),
                ]
            })
            .collect();
        let table = markdown_table(
            &["student", "val accuracy", "test accuracy", "test macro F1"],
            &rows,
        );
        run.write_text("sweep.md", &table)?;
        run.write_json("sweep.json", &results)?;
        std::fs::copy(&chosen, run.join("student.kdlens"))
            .with_context(|| format!("cannot copy {}", chosen.display()))?;
        run.log(format!(
            "sweep (best by validation accuracy: {}):\n{table}",
            best.name
        ));
        return Ok((run.join("student.kdlens"), results));
    }
    Ok((chosen, results))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grid as older runs' config files hold it: α = 1 at two temperatures, a point twice.
    #[test]
    fn each_student_of_a_stored_grid_is_trained_once() {
        let point = |a, t| DistillConfig::new(a, t).unwrap();
        let stored = [
            point(0.5, 5.0),
            point(0.5, 10.0),
            point(1.0, 5.0),
            point(1.0, 10.0),
            point(0.5, 5.0),
        ];
        let names: Vec<String> = distinct_points(&stored).iter().map(point_name).collect();
        assert_eq!(names, ["alpha0.5-t5", "alpha0.5-t10", "labels-only"]);
    }
}
