//! Prediction, every feature map and Grad-CAM from one forward pass.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use web_time::Instant;

use super::{
    ExplainOptions, GradCam, Heatmap,
    feature_maps::{check_single_image, pack, unpack},
    gradcam::{argmax, cam_tensor, resolve_class, unpack_cam},
};
use crate::{Result, model::LayeredClassifier, read_f32};

/// Wall-clock time of each step of [`explain`], in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Timings {
    /// Forward pass with activations and the read-back of logits and feature maps.
    pub forward_ms: f64,
    /// Grad-CAM backward from the chosen stage and its read-back.
    pub grad_cam_ms: f64,
    /// Softmax, resizing and normalisation on the host.
    pub postprocess_ms: f64,
    /// All of the above.
    pub total_ms: f64,
}

/// Everything the browser and `kdlens explain` show for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// Logits, one per class.
    pub logits: Vec<f32>,
    /// Softmax of the logits.
    pub probabilities: Vec<f32>,
    /// Index of the most probable class.
    pub predicted: usize,
    /// Raw channel-mean map of every stage at its own resolution.
    pub feature_maps: Vec<Heatmap>,
    /// Grad-CAM of the requested stage and class.
    pub grad_cam: GradCam,
    /// Time of each step.
    pub timings: Timings,
}

impl Explanation {
    /// Feature maps ready to draw: resized to `size` and min-max normalised.
    pub fn display_feature_maps(&self, size: [usize; 2]) -> Vec<Heatmap> {
        self.feature_maps
            .iter()
            .map(|m| m.resized(size).min_max_normalized())
            .collect()
    }
}

/// Numerically stable softmax of one row of logits (accumulated in f64): class probabilities
/// that sum to 1.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&z| ((z - max) as f64).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / total) as f32).collect()
}

/// Class probabilities of one image `[1, 3, H, W]` (softmax of the logits).
pub async fn predict<M: LayeredClassifier>(model: &M, input: Tensor<4>) -> Result<Vec<f32>> {
    check_single_image(&input)?;
    let logits = read_f32(model.forward(input)).await?;
    Ok(softmax(&logits))
}

/// Explains one image `[1, 3, H, W]`: one forward pass yields the logits and every stage's
/// activation; the channel means are computed on the device and read back together with the
/// logits; Grad-CAM then re-runs only the part of the network after the chosen stage.
///
/// The maps are returned raw, at each stage's resolution; render them at any size with
/// [`Explanation::display_feature_maps`] and [`GradCam::display`].
pub async fn explain<M: LayeredClassifier>(
    model: &M,
    input: Tensor<4>,
    options: &ExplainOptions,
) -> Result<Explanation> {
    check_single_image(&input)?;
    options.target.validate(model.num_classes())?;
    let layers = model.layers();
    let layer = match &options.layer {
        Some(name) => model.layer_index(name)?,
        None => model.default_cam_layer(),
    };
    let names: Vec<String> = layers.iter().map(|l| l.name.clone()).collect();

    let start = Instant::now();
    let trace = model.forward_with_activations(input);
    let packed = read_f32(pack(&trace)).await?;
    let maps = unpack(&packed, &trace, &names);
    let forward_done = Instant::now();

    let [_, _, h, w] = trace.activations[layer].dims();
    let cam_values = read_f32(cam_tensor(
        model,
        &trace,
        layer,
        options.target,
        options.score,
    )?)
    .await?;
    let cam_done = Instant::now();

    let probabilities = softmax(&maps.logits);
    let predicted = argmax(&maps.logits);
    let class = resolve_class(options.target, &maps.logits);
    let grad_cam = unpack_cam(cam_values, &names[layer], [h, w], class, options.score);
    let end = Instant::now();
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    Ok(Explanation {
        logits: maps.logits,
        probabilities,
        predicted,
        feature_maps: maps.maps,
        grad_cam,
        timings: Timings {
            forward_ms: ms(start, forward_done),
            grad_cam_ms: ms(forward_done, cam_done),
            postprocess_ms: ms(cam_done, end),
            total_ms: ms(start, end),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::softmax;

    #[test]
    fn softmax_is_stable_for_large_logits_and_sums_to_one() {
        let p = softmax(&[1000.0, 1000.0, -1000.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6 && p[2] == 0.0);
        let q = softmax(&[0.0, (2.0f32).ln()]);
        assert!((q[0] - 1.0 / 3.0).abs() < 1e-6 && (q[1] - 2.0 / 3.0).abs() < 1e-6);
    }
}
