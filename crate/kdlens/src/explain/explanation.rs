//! One call that turns a request into a [`Report`]: prediction and every feature map from one
//! forward pass, the CAM family from one backward pass, integrated gradients, SHAP,
//! faithfulness curves and the out-of-distribution verdict.

use std::collections::BTreeMap;

use burn::tensor::{Tensor, TensorData};
use web_time::Instant;

use super::{
    Attribution, ExpectedGradients, Method, Request, Target,
    cam::{activation_and_gradient, cams_from_values},
    expected_gradients_with_progress,
    feature_maps::{check_single_image, pack, unpack},
    integrated::{baseline, black_image, integrated_gradients},
    report::{Completeness, LayerMap, MethodMap, ModelSummary, REPORT_VERSION, Report},
};
use crate::{
    Error, Result,
    bundle::Manifest,
    image::{Preprocessing, gaussian_blur},
    model::{ForwardTrace, LayeredClassifier},
    read_f32,
    trust::{Faithfulness, InDistribution, deletion_insertion, pooled_features},
};

/// A callback told how far a long step has come: `(step, done, total)`, e.g. `("shap", 48,
/// 200)` after SHAP's third batch of 16 samples.
#[derive(Clone, Copy)]
pub struct Progress<'a>(pub &'a dyn Fn(&str, usize, usize));

impl Progress<'_> {
    /// Tells the callback.
    pub fn report(&self, step: &str, done: usize, total: usize) {
        (self.0)(step, done, total)
    }
}

impl std::fmt::Debug for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// What an explanation may need besides the model, the image and the request.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    /// The model's manifest: class names, normalisation (for baselines) and the
    /// out-of-distribution reference.
    pub manifest: Option<&'a Manifest>,
    /// SHAP's background images `[B, 3, H, W]`, normalised like inputs.
    pub background: Option<Tensor<4>>,
    /// Told SHAP's progress, sample by sample (the page's progress bar).
    pub progress: Option<Progress<'a>>,
}

/// Numerically stable softmax of one row of logits (accumulated in f64): class probabilities
/// that sum to 1.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&z| ((z - max) as f64).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / total) as f32).collect()
}

/// Index of the largest value (the first one on ties; 0 for an empty slice): the predicted class
/// of a row of logits or probabilities.
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(best, max), (i, &v)| {
            if v > max { (i, v) } else { (best, max) }
        })
        .0
}

/// Class probabilities of one image `[1, 3, H, W]` (softmax of the logits).
pub async fn predict<M: LayeredClassifier>(model: &M, input: Tensor<4>) -> Result<Vec<f32>> {
    check_single_image(&input)?;
    let logits = read_f32(model.forward(input)).await?;
    Ok(softmax(&logits))
}

/// Milliseconds since `start`.
fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// An input attribution as a report map (channels summed).
fn attribution_map(method: Method, attribution: &Attribution) -> MethodMap {
    let map = attribution.map();
    MethodMap {
        method,
        class: attribution.class,
        layer: map.layer,
        size: map.size,
        values: map.values,
        channel_weights: None,
        completeness: Some(Completeness {
            output: attribution.output,
            reference: attribution.expected_value,
            total: attribution.total(),
        }),
    }
}

/// Explains one image `[1, 3, H, W]` as `request` asks.
///
/// One forward pass yields the logits and every stage's activation (the channel means are
/// computed on the device and read back with the logits); the CAM methods share one backward
/// pass from the chosen stage; integrated gradients and SHAP add their own passes; deletion and
/// insertion curves run batched forwards per map. Every map is kept raw (render with
/// [`Report::render`]).
pub async fn explain<M: LayeredClassifier>(
    model: &M,
    input: Tensor<4>,
    request: &Request,
    context: &Context<'_>,
) -> Result<Report> {
    check_single_image(&input)?;
    request.validate(model.num_classes())?;
    let methods = request.methods();
    let layers = model.layers();
    let layer = model.cam_layer(request.layer.as_deref())?;
    let names: Vec<String> = layers.iter().map(|l| l.name.clone()).collect();
    let mut timings = BTreeMap::new();
    let start = Instant::now();

    let trace = model.forward_with_activations(input.clone());
    let packed = read_f32(pack(&trace)).await?;
    let fmv = unpack(&packed, &trace, &names);
    let class = request.target.resolve(&fmv.logits);
    timings.insert("forward".to_string(), ms_since(start));

    let mut maps = Vec::new();
    if methods.iter().any(|m| m.is_cam()) {
        let step = Instant::now();
        let [_, channels, h, w] = trace.activations[layer].dims();
        let values = read_f32(activation_and_gradient(
            model,
            &trace,
            layer,
            Target::Class(class),
            request.score,
        )?)
        .await?;
        maps.extend(
            cams_from_values(
                &values,
                &methods,
                &names[layer],
                [channels, h, w],
                class,
                request.score,
            )
            .into_iter()
            .map(|cam| MethodMap {
                method: cam.method,
                class,
                layer: cam.raw.layer,
                size: cam.raw.size,
                values: cam.raw.values,
                channel_weights: cam.weights,
                completeness: None,
            }),
        );
        timings.insert("cam".to_string(), ms_since(step));
    }

    let [_, _, ih, iw] = input.dims();
    let device = input.device();
    let default_preprocessing = Preprocessing::unit_range([ih, iw]);
    let preprocessing = context
        .manifest
        .map(|m| &m.preprocessing)
        .unwrap_or(&default_preprocessing);
    let needs_pixels =
        methods.contains(&Method::IntegratedGradients) || request.faithfulness.is_some();
    let pixels = if needs_pixels {
        read_f32(input.clone()).await?
    } else {
        Vec::new()
    };
    let as_input =
        |values: Vec<f32>| Tensor::<4>::from_data(TensorData::new(values, [1, 3, ih, iw]), &device);

    if methods.contains(&Method::IntegratedGradients) {
        let step = Instant::now();
        let plan = &request.integrated_gradients;
        let reference = as_input(baseline(&pixels, [ih, iw], plan, preprocessing));
        let attribution =
            integrated_gradients(model, input.clone(), reference, class, plan).await?;
        maps.push(attribution_map(Method::IntegratedGradients, &attribution));
        timings.insert(
            Method::IntegratedGradients.name().to_string(),
            ms_since(step),
        );
    }

    if methods.contains(&Method::Shap) {
        let step = Instant::now();
        let background = context
            .background
            .clone()
            .ok_or_else(|| Error::InvalidRequest("SHAP needs a background set of images".into()))?;
        let plan = &request.shap;
        let draws = ExpectedGradients::seeded(
            plan.samples,
            background.dims()[0],
            plan.seed,
            plan.batch_size,
        );
        let attribution = expected_gradients_with_progress(
            model,
            input.clone(),
            background,
            &[class],
            &draws,
            context.progress,
        )
        .await?
        .remove(0);
        maps.push(attribution_map(Method::Shap, &attribution));
        timings.insert(Method::Shap.name().to_string(), ms_since(step));
    }

    let mut faithfulness = Vec::new();
    if let Some(plan) = &request.faithfulness {
        let step = Instant::now();
        let black = black_image([ih, iw], preprocessing);
        let blurred = gaussian_blur(&pixels, [ih, iw], plan.blur_sigma * ih.max(iw) as f32);
        for map in &maps {
            let (deletion, insertion) = deletion_insertion(
                model,
                &pixels,
                &black,
                &blurred,
                [ih, iw],
                &map.saliency([ih, iw]),
                class,
                plan.steps,
                plan.batch_size,
                &device,
            )
            .await?;
            faithfulness.push(Faithfulness {
                method: map.method,
                class,
                deletion,
                insertion,
            });
        }
        timings.insert("faithfulness".to_string(), ms_since(step));
    }

    let in_distribution = match context.manifest.and_then(|m| m.ood_reference.as_ref()) {
        Some(reference) => {
            Some(reference.assess(&last_stage_features(&trace).await?, &fmv.logits)?)
        }
        None => None,
    };
    timings.insert("total".to_string(), ms_since(start));

    let probabilities = softmax(&fmv.logits);
    Ok(Report {
        version: REPORT_VERSION,
        model: context.manifest.map(ModelSummary::of),
        image: None,
        request: request.clone(),
        backend: None,
        predicted: argmax(&fmv.logits),
        logits: fmv.logits,
        probabilities,
        class,
        feature_maps: fmv
            .maps
            .into_iter()
            .zip(&layers)
            .map(|(map, info)| LayerMap {
                layer: map.layer,
                channels: info.channels,
                size: map.size,
                values: map.values,
            })
            .collect(),
        maps,
        faithfulness,
        in_distribution,
        timings_ms: timings,
    })
}

/// The pooled features of a forward pass's last stage (what the out-of-distribution reference
/// compares), read back.
async fn last_stage_features(trace: &ForwardTrace) -> Result<Vec<f32>> {
    read_f32(pooled_features(trace)?).await
}

/// Whether one image `[1, 3, H, W]` resembles a bundle's training data (one forward pass);
/// `None` when the bundle carries no reference.
pub async fn assess_input<M: LayeredClassifier>(
    model: &M,
    input: Tensor<4>,
    manifest: &Manifest,
) -> Result<Option<InDistribution>> {
    check_single_image(&input)?;
    match &manifest.ood_reference {
        Some(reference) => {
            let trace = model.forward_with_activations(input);
            let features = last_stage_features(&trace).await?;
            let logits = read_f32(trace.logits).await?;
            Ok(Some(reference.assess(&features, &logits)?))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::{argmax, softmax};

    #[test]
    fn softmax_is_stable_for_large_logits_and_sums_to_one() {
        let p = softmax(&[1000.0, 1000.0, -1000.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6 && p[2] == 0.0);
        let q = softmax(&[0.0, (2.0f32).ln()]);
        assert!((q[0] - 1.0 / 3.0).abs() < 1e-6 && (q[1] - 2.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), 1);
        assert_eq!(argmax(&[]), 0);
    }
}
