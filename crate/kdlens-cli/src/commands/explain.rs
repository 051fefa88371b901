//! `kdlens explain`.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Tensor, TensorData};
use kdlens::{
    block_on,
    explain::{
        CamScore, Colormap, ExpectedGradients, ExplainOptions, expected_gradients, explain,
        overlay, signed_overlay,
    },
    image::{RgbaImage, decode_file},
    model::LayeredClassifier,
};
use serde_json::json;
use std::time::Instant;

use super::common::parse_target;
use crate::{
    cli::{ColormapArg, ExplainArgs, GlobalArgs},
    model_io::{self, LoadedModel},
    report::write_png,
    run::RunDir,
};

/// Largest side of the overlays written, in pixels (bigger images are shown scaled down).
const MAX_OVERLAY_SIDE: usize = 1024;

/// How to explain.
pub struct ExplainSettings {
    /// Grad-CAM options.
    pub options: ExplainOptions,
    /// Heatmap colours.
    pub colormap: Colormap,
    /// Heatmap opacity.
    pub alpha: f32,
    /// SHAP samples (`None`: no SHAP).
    pub shap_samples: Option<usize>,
    /// SHAP background images `[B, 3, H, W]` values (already normalised), and B.
    pub background: Option<(Vec<f32>, usize)>,
    /// Seed of the SHAP draws.
    pub seed: u64,
}

/// The image scaled so that its longer side is at most [`MAX_OVERLAY_SIDE`].
fn display_image(image: &RgbaImage) -> Result<RgbaImage> {
    let longest = image.width().max(image.height());
    if longest <= MAX_OVERLAY_SIDE {
        return Ok(image.clone());
    }
    let scale = MAX_OVERLAY_SIDE as f64 / longest as f64;
    let size = [
        ((image.height() as f64 * scale).round() as usize).max(1),
        ((image.width() as f64 * scale).round() as usize).max(1),
    ];
    Ok(image.resized(size)?)
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Explains one decoded image into `out`; returns the JSON written.
pub fn explain_image(
    loaded: &LoadedModel,
    image: &RgbaImage,
    source: &Path,
    settings: &ExplainSettings,
    device: &Device,
    out: &Path,
) -> Result<serde_json::Value> {
    let manifest = loaded.manifest();
    let model = &loaded.model;
    let preprocessing = &manifest.preprocessing;
    let input = preprocessing.to_tensor(image, device)?;
    let explanation = block_on(explain(model, input.clone(), &settings.options))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    let shown = display_image(image)?;
    let size = [shown.height(), shown.width()];
    let layers = model.layers();
    let mut feature_files = Vec::new();
    for (k, map) in explanation.feature_maps.iter().enumerate() {
        let display = map.resized(size).min_max_normalized();
        let file = format!("fmv_{}_{}.png", k + 1, file_safe(&map.layer));
        write_png(
            &out.join(&file),
            &overlay(&shown, &display, settings.colormap, 0.5)?,
        )?;
        feature_files.push(json!({
            "layer": map.layer,
            "channels": layers[k].channels,
            "size": map.size,
            "values": map.values,
            "file": file,
        }));
    }
    let cam = &explanation.grad_cam;
    let cam_file = format!("gradcam_{}.png", file_safe(&cam.raw.layer));
    write_png(
        &out.join(&cam_file),
        &overlay(
            &shown,
            &cam.display(size),
            settings.colormap,
            settings.alpha,
        )?,
    )?;
    let cam_heatmap = settings.colormap.colorize(&cam.display(size));
    write_png(&out.join("gradcam_heatmap.png"), &cam_heatmap)?;

    let mut shap_json = serde_json::Value::Null;
    if let (Some(samples), Some((values, count))) = (settings.shap_samples, &settings.background) {
        let [h, w] = preprocessing.input_size;
        let background =
            Tensor::<4>::from_data(TensorData::new(values.clone(), [*count, 3, h, w]), device);
        let plan = ExpectedGradients::seeded(samples, *count, settings.seed, 16);
        let started = Instant::now();
        let attributions = block_on(expected_gradients(
            model,
            input,
            background,
            &[cam.class],
            &plan,
        ))?;
        let seconds = started.elapsed().as_secs_f64();
        let attribution = &attributions[0];
        let map = attribution.map().resized(size);
        write_png(&out.join("shap.png"), &signed_overlay(&shown, &map, 0.8)?)?;
        shap_json = json!({
            "class": attribution.class,
            "samples": samples,
            "background_images": count,
            "sum_of_attributions": attribution.total(),
            "output_logit": attribution.output,
            "expected_logit": attribution.expected_value,
            "seconds": seconds,
            "file": "shap.png",
        });
    }

    let value = json!({
        "image": source.display().to_string(),
        "image_size": [image.width(), image.height()],
        "model": manifest.name,
        "model_weights_sha256": manifest.weights.sha256,
        "classes": manifest.classes,
        "probabilities": explanation.probabilities,
        "logits": explanation.logits,
        "predicted": explanation.predicted,
        "predicted_class": manifest.classes[explanation.predicted],
        "grad_cam": {
            "layer": cam.raw.layer,
            "class": cam.class,
            "class_name": manifest.classes[cam.class],
            "score": cam.score,
            "size": cam.raw.size,
            "map": cam.raw.max_normalized().values,
            "raw": cam.raw.values,
            "file": cam_file,
        },
        "feature_maps": feature_files,
        "shap": shap_json,
        "timings_ms": explanation.timings,
    });
    std::fs::write(
        out.join("explanation.json"),
        serde_json::to_vec_pretty(&value)?,
    )
    .with_context(|| format!("cannot write {}", out.join("explanation.json").display()))?;
    Ok(value)
}

/// Background images for SHAP: a folder's images (up to `limit`), or a black and a mid-gray
/// image; returned normalised as one `[B, 3, H, W]` buffer.
pub fn background(
    loaded: &LoadedModel,
    folder: Option<&Path>,
    limit: usize,
) -> Result<(Vec<f32>, usize)> {
    let preprocessing = &loaded.manifest().preprocessing;
    let images: Vec<RgbaImage> = match folder {
        Some(dir) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .with_context(|| format!("cannot list background folder {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            let mut images = Vec::new();
            for path in files {
                if images.len() >= limit {
                    break;
                }
                if let Ok(image) = decode_file(&path) {
                    images.push(image);
                }
            }
            if images.is_empty() {
                bail!(
                    "background folder {} holds no readable image",
                    dir.display()
                );
            }
            images
        }
        None => [0u8, 128]
            .iter()
            .map(|&v| RgbaImage::new(8, 8, [v, v, v, 255].repeat(64)))
            .collect::<Result<_, _>>()?,
    };
    let mut values = Vec::new();
    for image in &images {
        values.extend(preprocessing.to_chw(image)?);
    }
    Ok((values, images.len()))
}

/// `kdlens explain IMAGE… --model M`.
pub fn run_explain(
    args: &ExplainArgs,
    global: &GlobalArgs,
    run: &RunDir,
    device: &Device,
) -> Result<()> {
    let loaded = model_io::load(&args.model, device)?;
    let classes = &loaded.manifest().classes;
    if let Some(layer) = &args.layer {
        loaded.model.layer_index(layer)?;
    }
    let settings = ExplainSettings {
        options: ExplainOptions {
            layer: args.layer.clone(),
            target: parse_target(args.class.as_deref(), classes)?,
            score: if args.probability {
                CamScore::Probability
            } else {
                CamScore::Logit
            },
        },
        colormap: match args.colormap {
            ColormapArg::Jet => Colormap::Jet,
            ColormapArg::Viridis => Colormap::Viridis,
        },
        alpha: args.alpha,
        shap_samples: args.shap.then_some(args.shap_samples),
        background: if args.shap {
            Some(background(
                &loaded,
                args.background.as_deref(),
                args.background_size,
            )?)
        } else {
            None
        },
        seed: global.seed,
    };
    if args.shap && args.shap_samples == 0 {
        bail!("--shap-samples must be at least 1");
    }
    let mut used = HashSet::new();
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    for path in &args.images {
        let image = match decode_file(path) {
            Ok(image) => image,
            Err(reason) => {
                run.log(format!("{}: {reason}", path.display()));
                failures.push(path.display().to_string());
                continue;
            }
        };
        let stem = file_safe(
            &path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let mut name = stem.clone();
        let mut n = 2;
        while !used.insert(name.clone()) {
            name = format!("{stem}-{n}");
            n += 1;
        }
        let out = run.join(&name);
        let value = explain_image(&loaded, &image, path, &settings, device, &out)?;
        let predicted = value["predicted"].as_u64().unwrap_or(0) as usize;
        run.log(format!(
            "{}: {} ({:.1} %) — Grad-CAM of {} on {} → {}",
            path.display(),
            classes[predicted],
            100.0 * value["probabilities"][predicted].as_f64().unwrap_or(0.0),
            value["grad_cam"]["class_name"].as_str().unwrap_or(""),
            value["grad_cam"]["layer"].as_str().unwrap_or(""),
            out.display()
        ));
        summary.push(value);
    }
    run.write_json("explanations.json", &summary)?;
    if !failures.is_empty() {
        bail!(
            "{} of {} image(s) could not be read: {}",
            failures.len(),
            args.images.len(),
            failures.join(", ")
        );
    }
    Ok(())
}
