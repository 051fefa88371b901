//! `kdlens export`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::tensor::{Device, Distribution, Tensor};
use kdlens::{
    block_on,
    bundle::{Bundle, Manifest, ShapBackground, WeightPrecision},
    explain::predict,
    model::save_safetensors,
};
use serde::Serialize;

use super::common::DataConfig;
use crate::{
    cli::{ExportArgs, GlobalArgs, PrecisionArg},
    data::{Splits, stratified},
    fsutil::{ensure_writable_dir, write_atomic},
    model_io,
    run::RunDir,
};

/// What an export wrote.
#[derive(Debug, Serialize)]
pub struct ExportSummary {
    /// The bundle.
    pub bundle: PathBuf,
    /// Its size in bytes.
    pub bundle_bytes: u64,
    /// The safetensors copy, when written.
    pub safetensors: Option<PathBuf>,
    /// Storage precision.
    pub precision: WeightPrecision,
    /// Largest probability difference between the stored and the original weights over 8
    /// random inputs (0 for f32).
    pub max_probability_difference: f32,
    /// Images in the bundle's SHAP background set (0: none).
    pub background_images: usize,
}

/// Where an export takes SHAP's background set from: `count` training images of `data`.
pub struct BackgroundSource<'a> {
    /// The training data and its split.
    pub data: &'a DataConfig,
    /// Images to keep (stratified over the classes).
    pub count: usize,
    /// Seed of the draw.
    pub seed: u64,
}

/// Up to `count` training images of `data` (split as its options say, stratified over the
/// classes, seeded), as SHAP's background for a model with `manifest`.
pub fn training_background(
    BackgroundSource { data, count, seed }: &BackgroundSource,
    manifest: &Manifest,
) -> Result<ShapBackground> {
    // As many as asked for, as far as the manifest has room.
    let count = (*count).min(ShapBackground::capacity(&manifest.preprocessing));
    let seed = *seed;
    let splits = Splits::load(&data.source, &data.split)?;
    if splits.classes != manifest.classes {
        bail!(
            "the background data's classes {:?} are not the model's {:?}",
            splits.classes,
            manifest.classes
        );
    }
    let scan = data
        .scan
        .or_defaults_from(manifest.preprocessing.scan_options());
    let mut images = Vec::with_capacity(count);
    for sample in stratified(&splits.train, splits.classes.len(), count, seed) {
        let image = sample.image.load(&scan).map_err(|e| {
            anyhow!(
                "cannot read background image {}: {e}",
                sample.image.describe()
            )
        })?;
        images.push((image, sample.label));
    }
    Ok(ShapBackground::new(&images, &manifest.preprocessing)?)
}

/// Writes the bundle `bundle_path` (and, when `safetensors_dir` is given, a safetensors copy there
/// named after the bundle) from the model file `source`, checking the stored precision against the
/// original weights.
/// With `background`, SHAP's background set is drawn from it ([`training_background`]);
/// otherwise the source's set, if any, is kept.
pub fn export(
    source: &Path,
    bundle_path: &Path,
    precision: WeightPrecision,
    name: Option<&str>,
    safetensors_dir: Option<&Path>,
    background: Option<&BackgroundSource>,
    device: &Device,
) -> Result<ExportSummary> {
    let loaded = model_io::load(source, device)?;
    let out = bundle_path.parent().unwrap_or(Path::new("."));
    ensure_writable_dir(out)?;
    let mut manifest = loaded.manifest().clone();
    if let Some(background) = background {
        manifest.shap_background = Some(training_background(background, &manifest)?);
    }
    if let Some(name) = name {
        manifest.name = name.to_string();
    }
    if manifest.intended_use.is_none() {
        manifest.intended_use = Some(
            "Research and teaching demonstration of knowledge distillation and explanation; \
             not a medical device and not for diagnosis."
                .into(),
        );
    }
    let bundle = Bundle::new(&loaded.model, manifest, precision)?;
    let bytes = bundle.to_bytes()?;
    // Round-trip check: the stored weights must reproduce the original model's predictions.
    let reloaded = Bundle::from_bytes(&bytes)?.load_model(device)?;
    let [h, w] = loaded.manifest().spec.input_size;
    device.seed(7);
    let mut worst = 0.0f32;
    for _ in 0..8 {
        let input = Tensor::<4>::random([1, 3, h, w], Distribution::Uniform(0.0, 1.0), device);
        let a = block_on(predict(&loaded.model, input.clone()))?;
        let b = block_on(predict(&reloaded, input))?;
        worst = a
            .iter()
            .zip(&b)
            .fold(worst, |m, (x, y)| m.max((x - y).abs()));
    }
    write_atomic(bundle_path, &bytes)?;
    let safetensors = match safetensors_dir {
        Some(dir) => {
            ensure_writable_dir(dir)?;
            let path = dir.join(
                bundle_path
                    .with_extension("safetensors")
                    .file_name()
                    .unwrap_or_default(),
            );
            save_safetensors(&loaded.model, &path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(path)
        }
        None => None,
    };
    Ok(ExportSummary {
        bundle: bundle_path.to_path_buf(),
        bundle_bytes: bytes.len() as u64,
        safetensors,
        precision,
        max_probability_difference: worst,
        background_images: background_images(&bundle),
    })
}

fn background_images(bundle: &Bundle) -> usize {
    bundle
        .manifest()
        .shap_background
        .as_ref()
        .map_or(0, ShapBackground::len)
}

/// `kdlens export --model M --out DIR`.
pub fn run_export(
    args: &ExportArgs,
    global: &GlobalArgs,
    run: &RunDir,
    device: &Device,
) -> Result<()> {
    let precision = match args.precision {
        PrecisionArg::F32 => WeightPrecision::F32,
        PrecisionArg::F16 => WeightPrecision::F16,
        PrecisionArg::Int8 => WeightPrecision::Int8,
    };
    let data = match &args.data.data {
        Some(_) if args.background_images > 0 => {
            Some(DataConfig::from_args(&args.data, global.seed, 0)?)
        }
        _ => None,
    };
    let background = data.as_ref().map(|data| BackgroundSource {
        data,
        count: args.background_images,
        seed: global.seed,
    });
    let summary = export(
        &args.model,
        &args.out.join("model.kdlens"),
        precision,
        args.name.as_deref(),
        Some(&args.out),
        background.as_ref(),
        device,
    )?;
    run.write_json("export.json", &summary)?;
    run.log(format!(
        "wrote {} ({:.2} MB, {:?}; largest probability change from the original weights {:.1e}; SHAP background {} images{}) and {}",
        summary.bundle.display(),
        summary.bundle_bytes as f64 / 1e6,
        summary.precision,
        summary.max_probability_difference,
        summary.background_images,
        if background.is_some() && summary.background_images < args.background_images {
            format!(" — fewer than the {} asked for: the manifest holds no more", args.background_images)
        } else {
            String::new()
        },
        summary.safetensors.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
    ));
    Ok(())
}
