//! `kdlens explain`: the core's report for each image, written as JSON with one PNG per view.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use burn::tensor::{Device, Tensor};
use kdlens::{
    block_on,
    explain::{
        Colormap, Context, FaithfulnessPlan, ImageSummary, IntegratedGradientsPlan, Method, Report,
        Request, ShapPlan, View, composite, explain,
    },
    image::{Decoded, RgbaImage, decode_file_with, scan::ScanOptions},
    model::LayeredClassifier,
};

use super::common::parse_target;
use crate::{
    cli::{DeviceArg, ExplainArgs, GlobalArgs, RequestArgs},
    model_io::{self, LoadedModel},
    report::write_png,
    run::RunDir,
};

/// Largest side of the overlays written, in pixels (bigger images are shown scaled down).
const MAX_OVERLAY_SIDE: usize = 1024;

/// How the views of a report are drawn.
#[derive(Debug, Clone, Copy)]
pub struct Drawing {
    /// Colours of the unsigned maps.
    pub colormap: Colormap,
    /// Opacity of the maps over the image.
    pub opacity: f32,
}

impl RequestArgs {
    /// The core request these flags describe, for a model with `classes`; `seed` seeds SHAP's
    /// draws and the noise baseline.
    pub fn to_request(&self, classes: &[String], seed: u64) -> Result<Request> {
        let mut methods = if self.all_methods {
            Method::ALL.to_vec()
        } else {
            self.methods.clone()
        };
        if self.shap {
            methods.push(Method::Shap);
        }
        if methods.contains(&Method::Shap) && self.shap_samples == 0 {
            bail!("--shap-samples must be at least 1");
        }
        let request = Request {
            methods,
            layer: self.layer.clone(),
            target: parse_target(self.class.as_deref(), classes)?,
            score: self.score,
            integrated_gradients: IntegratedGradientsPlan {
                steps: self.ig_steps,
                baseline: self.ig_baseline,
                seed,
                ..IntegratedGradientsPlan::default()
            },
            shap: ShapPlan {
                samples: self.shap_samples,
                seed,
                ..ShapPlan::default()
            },
            faithfulness: self.faithfulness.then(|| FaithfulnessPlan {
                steps: self.faithfulness_steps,
                ..FaithfulnessPlan::default()
            }),
        };
        request.validate(classes.len())?;
        Ok(request)
    }
}

/// The name of the device in reports.
pub fn backend_name(device: DeviceArg) -> String {
    match device {
        DeviceArg::Flex => "flex",
        DeviceArg::Wgpu => "wgpu",
    }
    .to_string()
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

/// A name made of ASCII letters, digits, `-` and `_` only.
pub fn file_safe(name: &str) -> String {
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

/// The PNG file name of a view: `fmv_3_conv3.png`, `grad-cam.png`, `grad-cam__.png` …
pub fn view_file(report: &Report, view: &View) -> String {
    match view {
        View::FeatureMap(k) => format!(
            "fmv_{}_{}.png",
            k + 1,
            file_safe(&report.feature_maps[*k].layer)
        ),
        View::Method(method) => format!("{}.png", file_safe(method.name())),
    }
}

/// Explains one decoded image and writes `explanation.json` (the core's [`Report`]) and one
/// overlay PNG per view into `out`.
#[allow(clippy::too_many_arguments)]
pub fn explain_image(
    loaded: &LoadedModel,
    decoded: &Decoded,
    source: &Path,
    request: &Request,
    background: Option<&Tensor<4>>,
    drawing: Drawing,
    backend: &str,
    device: &Device,
    out: &Path,
) -> Result<Report> {
    let manifest = loaded.manifest();
    let image = &decoded.image;
    let input = manifest.preprocessing.to_tensor(image, device)?;
    let context = Context {
        manifest: Some(manifest),
        background: background.cloned(),
        ..Context::default()
    };
    let mut report = block_on(explain(&loaded.model, input, request, &context))?;
    report.image = Some(ImageSummary {
        name: source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        width: image.width(),
        height: image.height(),
        scan: decoded.scan.clone(),
    });
    report.backend = Some(backend.to_string());
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let shown = display_image(image)?;
    let size = [shown.height(), shown.width()];
    for view in report.views() {
        let layer = report.render(&view, size, drawing.colormap, drawing.opacity)?;
        write_png(
            &out.join(view_file(&report, &view)),
            &composite(&shown, &layer)?,
        )?;
    }
    let path = out.join("explanation.json");
    crate::fsutil::write_atomic(&path, &serde_json::to_vec_pretty(&report)?)?;
    Ok(report)
}

/// Background images for SHAP: a folder's images (up to `limit`), or else the bundle's set
/// (`kdlens export --background-images`), or else a black and a mid-gray image; normalised as
/// `[B, 3, H, W]` on `device`.
pub fn background(
    loaded: &LoadedModel,
    folder: Option<&Path>,
    limit: usize,
    scan: &ScanOptions,
    device: &Device,
) -> Result<Tensor<4>> {
    let manifest = loaded.manifest();
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
                if let Ok(decoded) = decode_file_with(&path, scan) {
                    images.push(decoded.image);
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
        None => manifest.shap_background_images()?,
    };
    Ok(manifest.preprocessing.to_batch(&images, device)?)
}

/// One line of the log for a report.
pub fn describe(report: &Report, source: &Path, out: &Path) -> String {
    let name = |c: usize| report.class_name(c).unwrap_or("?").to_string();
    let methods: Vec<&str> = report.maps.iter().map(|m| m.method.name()).collect();
    let warning = match report.in_distribution {
        Some(v) if !v.in_distribution => format!(
            " — WARNING: unlike the training images (feature distance {:.0}, limit {:.0}; energy {:.2}, limit {}); do not trust this prediction",
            v.score,
            v.threshold,
            v.energy,
            v.energy_threshold
                .map_or("none".to_string(), |t| format!("{t:.2}"))
        ),
        _ => String::new(),
    };
    format!(
        "{}: {} ({:.1} %) — {} of {} → {}{warning}",
        source.display(),
        name(report.predicted),
        100.0 * report.probabilities[report.predicted],
        if methods.is_empty() {
            "feature maps".to_string()
        } else {
            methods.join(", ")
        },
        name(report.class),
        out.display()
    )
}

/// `kdlens explain IMAGE… --model M`.
pub fn run_explain(
    args: &ExplainArgs,
    global: &GlobalArgs,
    run: &RunDir,
    device: &Device,
) -> Result<()> {
    let loaded = model_io::load(&args.model, device)?;
    // Scans are read the way the model was trained to see them, unless flags say otherwise.
    let scan = args
        .scan
        .over(loaded.manifest().preprocessing.scan_options());
    if let Some(layer) = &args.request.layer {
        loaded.model.layer_index(layer)?;
    }
    let request = args
        .request
        .to_request(&loaded.manifest().classes, global.seed)?;
    let background = if request.methods.contains(&Method::Shap) {
        Some(background(
            &loaded,
            args.request.background.as_deref(),
            args.request.background_size,
            &scan,
            device,
        )?)
    } else {
        None
    };
    let drawing = Drawing {
        colormap: args.colormap,
        opacity: args.opacity,
    };
    let backend = backend_name(global.device);
    let mut used = HashSet::new();
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    for path in &args.images {
        let image = match decode_file_with(path, &scan) {
            Ok(decoded) => decoded,
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
        let report = explain_image(
            &loaded,
            &image,
            path,
            &request,
            background.as_ref(),
            drawing,
            &backend,
            device,
            &out,
        )?;
        run.log(describe(&report, path, &out));
        summary.push(report);
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
