//! `kdlens train-teacher`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::Device;
use kdlens::{
    image::Normalization,
    model::{
        Architecture, Classifier, DenseNet, DenseNetConfig, ModelSpec, load_torchvision_densenet,
    },
};
use serde::{Deserialize, Serialize};

use super::{
    common::{DataConfig, PreparedData, manifest_for, prepare},
    evaluate::evaluate_and_save,
    training_config,
};
use crate::{
    cli::{DeviceArg, GlobalArgs, TrainTeacherArgs},
    run::{RunDir, read_config},
    train::{FitRequest, InitialWeights, Objective, TrainConfig, fit},
};

/// Everything that defines a teacher run (its `config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherConfig {
    /// Device the run used.
    pub device: DeviceArg,
    /// Data settings.
    pub data: DataConfig,
    /// Optimisation settings.
    pub train: TrainConfig,
    /// torchvision weights to start from.
    pub init: Option<PathBuf>,
}

/// Resolves flags (or `--config`, or the resumed run's config) into a configuration.
pub fn resolve(args: &TrainTeacherArgs, global: &GlobalArgs) -> Result<TeacherConfig> {
    if let Some(dir) = &args.train.resume {
        return read_config(&dir.join("config.toml"));
    }
    if let Some(path) = &args.train.config {
        return read_config(path);
    }
    let mut data = DataConfig::from_args(&args.data, global.seed, 224)?;
    // ImageNet weights expect ImageNet's statistics; a teacher from scratch the paper's [0, 1].
    data.normalize = match (args.normalize, &args.init) {
        (Some(choice), _) => choice.into(),
        (None, Some(_)) => Normalization::Imagenet,
        (None, None) => Normalization::Unit,
    };
    Ok(TeacherConfig {
        device: global.device,
        data,
        train: training_config(&args.train, TrainConfig::paper(global.seed), global.device),
        init: args.init.clone(),
    })
}

/// Trains the teacher described by `config` in `run`; returns the final model file's path.
pub fn train_teacher(
    config: &TeacherConfig,
    run: &RunDir,
    device: &Device,
    resume: bool,
) -> Result<PathBuf> {
    run.write_config(config)?;
    let data = prepare(&config.data, run)?;
    train_teacher_on(config, &data, run, device, resume)
}

/// [`train_teacher`] on data already prepared (the demo shares it between runs).
pub fn train_teacher_on(
    config: &TeacherConfig,
    data: &PreparedData,
    run: &RunDir,
    device: &Device,
    resume: bool,
) -> Result<PathBuf> {
    let preprocessing = config.data.preprocessing();
    let size = [config.data.image_size; 2];
    let classes = data.splits.classes.len();
    let spec = ModelSpec::new(Architecture::densenet121(), classes, size)?;
    // Read only for a fresh start: a resumed run continues from its checkpoint, even when the
    // file it started from has since moved.
    let initial = config.init.as_ref().map(|path| -> InitialWeights {
        Box::new(move || {
            let fresh = DenseNet::new(&DenseNetConfig::densenet121(), classes, size, device);
            let (model, head) = load_torchvision_densenet(fresh, path)
                .with_context(|| format!("cannot start from {}", path.display()))?;
            run.log(format!(
                "starting from {}{}",
                path.display(),
                if head {
                    ""
                } else {
                    " (classifier re-initialised for this class count)"
                }
            ));
            Ok(Classifier::DenseNet(model))
        })
    });
    let manifest = manifest_for(
        "DenseNet-121 teacher".into(),
        spec.clone(),
        &data.splits,
        preprocessing.clone(),
        serde_json::to_value(config)?,
        config.train.seed,
    );
    let outcome = fit(FitRequest {
        spec,
        initial,
        train: &data.train,
        val: &data.val,
        preprocessing: &preprocessing,
        objective: Objective::Labels,
        config: &config.train,
        device,
        run,
        manifest: manifest.clone(),
        resume,
        replicas: crate::device::replicas(config.device, device, config.train.replicas)?,
    })?;
    let (evaluation, path) = evaluate_and_save(
        &outcome.model,
        data,
        &preprocessing,
        device,
        "teacher",
        run,
        manifest,
    )?;
    run.log(format!(
        "teacher: test accuracy {:.4}, macro F1 {:.4} (best epoch {}) → {}",
        evaluation.report.accuracy,
        evaluation.report.macro_avg.f1,
        outcome.best_epoch,
        path.display()
    ));
    Ok(path)
}
