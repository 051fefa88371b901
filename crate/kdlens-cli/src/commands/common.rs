//! Steps shared by several commands: resolving data settings, loading and caching images,
//! evaluating on a cached split.

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kdlens::{
    bundle::{Manifest, Provenance},
    explain::{Target, argmax, softmax},
    image::{ColorMode, Normalization, Preprocessing, scan::ScanOptions},
    metrics::{ClassificationReport, ConfusionMatrix, expected_calibration_error},
    model::Classifier,
};
use serde::{Deserialize, Serialize};

use crate::{
    cli::DataArgs,
    data::{DataSource, ImageCache, Sample, SplitOptions, Splits, augment::Transform},
    run::RunDir,
    train::inference,
};

/// Resolved data settings, as recorded in a run's `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// The image set.
    pub source: DataSource,
    /// Splitting and subsampling.
    pub split: SplitOptions,
    /// Model input side in pixels.
    pub image_size: usize,
    /// Grayscale input.
    pub grayscale: bool,
    /// Leave out unreadable images instead of stopping.
    pub skip_bad_images: bool,
    /// How scans become images (recorded in the trained model).
    #[serde(default)]
    pub scan: ScanOptions,
    /// Input normalisation after scaling to `[0, 1]` (recorded in the trained model).
    #[serde(default)]
    pub normalize: Normalization,
}

impl DataConfig {
    /// From command-line flags; `default_size` when `--image-size` is absent.
    pub fn from_args(args: &DataArgs, seed: u64, default_size: usize) -> Result<Self> {
        let Some(data) = &args.data else {
            bail!(
                "--data is required: an image folder, a Fashion-MNIST folder, or `fashion-mnist`"
            );
        };
        Ok(Self {
            source: DataSource::parse(data)?,
            split: SplitOptions {
                val_fraction: args.val_fraction,
                test_fraction: args.test_fraction,
                limit_per_class: args.limit_per_class,
                test_limit_per_class: args.test_limit_per_class,
                seed,
            },
            image_size: args.image_size.unwrap_or(default_size),
            grayscale: args.grayscale,
            skip_bad_images: args.skip_bad_images,
            scan: args.scan.over(ScanOptions::default()),
            normalize: Normalization::Unit,
        })
    }

    /// The input pipeline these settings describe: pixels / 255, then `normalize`'s mean and
    /// standard deviation.
    pub fn preprocessing(&self) -> Preprocessing {
        let mut pre = Preprocessing::unit_range([self.image_size, self.image_size])
            .normalized(self.normalize);
        if self.grayscale {
            pre.color = ColorMode::Grayscale;
        }
        pre.scan = Some(self.scan);
        pre
    }
}

/// The three splits decoded into memory.
pub struct PreparedData {
    /// The sample lists and class names.
    pub splits: Splits,
    /// Training images.
    pub train: ImageCache,
    /// Validation images.
    pub val: ImageCache,
    /// Test images.
    pub test: ImageCache,
}

/// Decodes `samples` with a progress bar; returns the cache and the unusable images.
pub fn cache_split(
    name: &str,
    samples: &[Sample],
    preprocessing: &Preprocessing,
) -> (ImageCache, Vec<(String, String)>) {
    let bar = ProgressBar::new(samples.len() as u64).with_style(
        ProgressStyle::with_template(
            "{prefix} {bar:30} {pos}/{len} images · {per_sec} · eta {eta}",
        )
        .expect("valid template"),
    );
    bar.set_prefix(format!("decoding {name}"));
    let (cache, report) = ImageCache::build(samples, preprocessing, &|| bar.inc(1));
    bar.finish_and_clear();
    (cache, report.bad)
}

/// Stops with the full list of unusable images unless the user allowed skipping them.
pub fn check_bad_images(bad: &[(String, String)], skip: bool, run: &RunDir) -> Result<()> {
    if bad.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = bad
        .iter()
        .map(|(path, reason)| format!("  {path}: {reason}"))
        .collect();
    if skip {
        run.log(format!(
            "leaving out {} unusable image(s):\n{}",
            bad.len(),
            list.join("\n")
        ));
        Ok(())
    } else {
        bail!(
            "{} image(s) cannot be used; fix or remove them, or pass --skip-bad-images to leave \
             them out:\n{}",
            bad.len(),
            list.join("\n")
        )
    }
}

/// Loads and splits the data, decodes every split, and enforces the bad-image policy before any
/// training starts.
pub fn prepare(config: &DataConfig, run: &RunDir) -> Result<PreparedData> {
    let splits = Splits::load(&config.source, &config.split)?;
    run.log(format!(
        "data: {} — {} classes, {} train / {} validation / {} test images",
        splits.origin,
        splits.classes.len(),
        splits.train.len(),
        splits.val.len(),
        splits.test.len()
    ));
    let preprocessing = config.preprocessing();
    let (train, mut bad) = cache_split("train", &splits.train, &preprocessing);
    let (val, bad_val) = cache_split("validation", &splits.val, &preprocessing);
    let (test, bad_test) = cache_split("test", &splits.test, &preprocessing);
    bad.extend(bad_val);
    bad.extend(bad_test);
    check_bad_images(&bad, config.skip_bad_images, run)?;
    if test.is_empty() {
        bail!("the test split is empty; lower --test-limit-per-class or add test images");
    }
    Ok(PreparedData {
        splits,
        train,
        val,
        test,
    })
}

/// Test-set evaluation of one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    /// Accuracy, P/R/F1.
    pub report: ClassificationReport,
    /// Counts, rows true, columns predicted.
    pub confusion: ConfusionMatrix,
    /// Expected calibration error, 15 bins.
    pub ece: f64,
    /// `(image, true class, predicted class, confidence)` of every error.
    pub misclassified: Vec<(String, usize, usize, f32)>,
}

/// Runs `model` over `cache` and scores it.
pub fn evaluate(
    model: &Classifier,
    cache: &ImageCache,
    preprocessing: &Preprocessing,
    device: &burn::tensor::Device,
    num_classes: usize,
) -> Result<Evaluation> {
    let logits = inference::logits(
        model,
        cache,
        preprocessing,
        device,
        32,
        Transform::identity(),
    )?;
    let mut probabilities = Vec::with_capacity(logits.len());
    let mut predictions = Vec::with_capacity(cache.len());
    let mut misclassified = Vec::new();
    for (i, row) in logits.chunks_exact(num_classes).enumerate() {
        let p = softmax(row);
        let predicted = argmax(&p);
        let label = cache.labels()[i];
        if predicted != label {
            misclassified.push((cache.name(i).to_string(), label, predicted, p[predicted]));
        }
        predictions.push(predicted);
        probabilities.extend(p);
    }
    let confusion = ConfusionMatrix::from_predictions(cache.labels(), &predictions, num_classes)?;
    Ok(Evaluation {
        report: confusion.report(),
        ece: expected_calibration_error(&probabilities, cache.labels(), num_classes, 15)?,
        confusion,
        misclassified,
    })
}

/// A manifest template for a model trained in this run.
pub fn manifest_for(
    name: String,
    spec: kdlens::model::ModelSpec,
    splits: &Splits,
    preprocessing: Preprocessing,
    training: serde_json::Value,
    seed: u64,
) -> Manifest {
    let mut manifest = Manifest::new(name, spec, splits.classes.clone(), preprocessing);
    manifest.training = Some(training);
    manifest.provenance = Provenance {
        kdlens_version: env!("CARGO_PKG_VERSION").to_string(),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        dataset: Some(splits.origin.clone()),
        dataset_sha256: Some(splits.fingerprint()),
        seed: Some(seed),
    };
    manifest
}

/// Parses `--class` as an index or a class name.
pub fn parse_target(class: Option<&str>, classes: &[String]) -> Result<Target> {
    let Some(text) = class else {
        return Ok(Target::Predicted);
    };
    if let Ok(index) = text.parse::<usize>() {
        if index < classes.len() {
            return Ok(Target::Class(index));
        }
        bail!(
            "--class {index} is out of range: the model has {} classes",
            classes.len()
        );
    }
    classes
        .iter()
        .position(|c| c.eq_ignore_ascii_case(text))
        .map(Target::Class)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--class {text:?} is not one of the model's classes: {}",
                classes.join(", ")
            )
        })
}
