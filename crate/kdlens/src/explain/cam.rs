//! The class-activation-map family — Grad-CAM, Grad-CAM++, HiResCAM and LayerCAM — from one
//! stage's activation `A` and the gradient `G = ∂score/∂A` of one backward pass.
//!
//! With `c` the channel and `(y, x)` the position (formulas as in pytorch-grad-cam 1.5):
//! - Grad-CAM: `w_c = mean_yx G`, map `ReLU(Σ_c w_c A_c)`.
//! - Grad-CAM++: `α = G² / (2G² + (Σ_yx A_c) G³ + 1e-6)` where `G ≠ 0` (else 0),
//!   `w_c = Σ_yx ReLU(G) α`, map `ReLU(Σ_c w_c A_c)`.
//! - HiResCAM: map `ReLU(Σ_c G ⊙ A)`.
//! - LayerCAM: map `ReLU(Σ_c ReLU(G) ⊙ A)`.

use burn::tensor::{Tensor, activation::softmax};
use serde::{Deserialize, Serialize};

use super::{CamScore, Heatmap, Method, Target, feature_maps::check_single_image};
use crate::{
    Error, Result,
    model::{ForwardTrace, LayeredClassifier},
    read_f32,
};

/// Grad-CAM++'s guard against division by zero (pytorch-grad-cam's value).
const GRAD_CAM_PP_EPS: f64 = 1e-6;

/// One class activation map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cam {
    /// The method that made it (one of [`Method::CAMS`]).
    pub method: Method,
    /// The class explained.
    pub class: usize,
    /// The score whose gradient was followed.
    pub score: CamScore,
    /// The map at the stage's resolution, `≥ 0`, not normalised.
    pub raw: Heatmap,
    /// The channel weights `w_c` of Grad-CAM and Grad-CAM++ (`None` for the per-position
    /// methods).
    pub weights: Option<Vec<f32>>,
}

impl Cam {
    /// The map divided by its maximum (all zeros when nothing speaks for the class), then
    /// bilinearly resized to `size` — the authors' order of operations.
    pub fn display(&self, size: [usize; 2]) -> Heatmap {
        self.raw.max_normalized().resized(size)
    }
}

/// The map `[h·w]` and, for Grad-CAM and Grad-CAM++, the channel weights `[channels]` of
/// `method`, from a stage's activation and gradient, both `[channels, h, w]` row-major.
///
/// # Panics
/// If `method` is not a CAM method or the slices are not `channels · h · w` long.
pub fn cam_map(
    method: Method,
    activation: &[f32],
    gradient: &[f32],
    channels: usize,
) -> (Vec<f32>, Option<Vec<f32>>) {
    assert!(method.is_cam(), "{method} is not a CAM method");
    assert_eq!(
        activation.len(),
        gradient.len(),
        "activation and gradient differ in size"
    );
    let plane = activation.len() / channels.max(1);
    let channel = |c: usize| {
        (
            &activation[c * plane..(c + 1) * plane],
            &gradient[c * plane..(c + 1) * plane],
        )
    };
    let weighted_sum = |weights: &[f64]| {
        let mut map = vec![0.0f64; plane];
        for (c, &w) in weights.iter().enumerate() {
            for (m, &a) in map.iter_mut().zip(channel(c).0) {
                *m += w * a as f64;
            }
        }
        map
    };
    let per_position = |f: fn(f64) -> f64| {
        let mut map = vec![0.0f64; plane];
        for c in 0..channels {
            let (a, g) = channel(c);
            for ((m, &a), &g) in map.iter_mut().zip(a).zip(g) {
                *m += f(g as f64) * a as f64;
            }
        }
        map
    };
    let (map, weights) = match method {
        Method::GradCam => {
            let weights: Vec<f64> = (0..channels)
                .map(|c| channel(c).1.iter().map(|&g| g as f64).sum::<f64>() / plane as f64)
                .collect();
            (weighted_sum(&weights), Some(weights))
        }
        Method::GradCamPlusPlus => {
            let weights: Vec<f64> = (0..channels)
                .map(|c| {
                    let (a, g) = channel(c);
                    let sum_a: f64 = a.iter().map(|&v| v as f64).sum();
                    g.iter()
                        .map(|&g| {
                            let g = g as f64;
                            if g == 0.0 {
                                return 0.0;
                            }
                            let alpha = g * g / (2.0 * g * g + sum_a * g * g * g + GRAD_CAM_PP_EPS);
                            g.max(0.0) * alpha
                        })
                        .sum()
                })
                .collect();
            (weighted_sum(&weights), Some(weights))
        }
        Method::HiResCam => (per_position(|g| g), None),
        Method::LayerCam => (per_position(|g| g.max(0.0)), None),
        _ => unreachable!("checked above"),
    };
    (
        map.into_iter().map(|v| v.max(0.0) as f32).collect(),
        weights.map(|w| w.into_iter().map(|v| v as f32).collect()),
    )
}

/// The scalar to differentiate: the target class's logit or probability, for image 0.
fn score_of(logits: Tensor<2>, target: Target, score: CamScore) -> Tensor<1> {
    let values = match score {
        CamScore::Logit => logits,
        CamScore::Probability => softmax(logits, 1),
    };
    match target {
        // The predicted class is the arg-max of the logits and of the probabilities alike, so
        // its score is the row maximum: no read-back is needed to find it.
        Target::Predicted => values.max_dim(1).flatten::<1>(0, 1),
        Target::Class(c) => values.slice([0..1, c..c + 1]).flatten::<1>(0, 1),
    }
}

/// Stage `layer`'s activation followed by the gradient of the class score with respect to it,
/// flattened into one tensor (`2 · channels · h · w` values) on the device. Reuses the
/// activations of an earlier forward pass: only the part of the network after `layer` runs
/// again, with the stage's output as the leaf of a fresh autodiff graph.
pub(crate) fn activation_and_gradient<M: LayeredClassifier>(
    model: &M,
    trace: &ForwardTrace,
    layer: usize,
    target: Target,
    score: CamScore,
) -> Result<Tensor<1>> {
    let activation = trace.activations[layer].clone().detach();
    let leaf = activation.clone().autodiff().require_grad();
    let logits = model.forward_from(layer, leaf.clone(), &trace.activations);
    let grads = score_of(logits, target, score).sum().backward();
    let gradient = leaf.grad(&grads).ok_or_else(|| {
        Error::InvalidRequest(format!(
            "no gradient reached stage {layer} from the class score"
        ))
    })?;
    Ok(Tensor::cat(
        vec![
            activation.without_autodiff().flatten::<1>(0, 3),
            gradient.flatten::<1>(0, 3),
        ],
        0,
    ))
}

/// Splits what [`activation_and_gradient`] read back into the requested maps.
pub(crate) fn cams_from_values(
    values: &[f32],
    methods: &[Method],
    layer: &str,
    dims: [usize; 3],
    class: usize,
    score: CamScore,
) -> Vec<Cam> {
    let [channels, h, w] = dims;
    let (activation, gradient) = values.split_at(channels * h * w);
    methods
        .iter()
        .filter(|m| m.is_cam())
        .map(|&method| {
            let (map, weights) = cam_map(method, activation, gradient, channels);
            Cam {
                method,
                class,
                score,
                raw: Heatmap::new(layer, [h, w], map),
                weights,
            }
        })
        .collect()
}

/// The CAM `methods` of one image `[1, 3, H, W]` at stage `layer` (`None`: the last stage) for
/// `target`, from one forward and one backward pass. Non-CAM methods in `methods` are ignored.
pub async fn class_activation_maps<M: LayeredClassifier>(
    model: &M,
    input: Tensor<4>,
    layer: Option<&str>,
    target: Target,
    score: CamScore,
    methods: &[Method],
) -> Result<Vec<Cam>> {
    check_single_image(&input)?;
    target.validate(model.num_classes())?;
    let layers = model.layers();
    let index = model.cam_layer(layer)?;
    let trace = model.forward_with_activations(input);
    let [_, channels, h, w] = trace.activations[index].dims();
    let both = activation_and_gradient(model, &trace, index, target, score)?;
    let num_classes = trace.logits.dims()[1];
    let mut values = read_f32(Tensor::cat(vec![trace.logits.flatten::<1>(0, 1), both], 0)).await?;
    let stage = values.split_off(num_classes);
    let class = target.resolve(&values);
    Ok(cams_from_values(
        &stage,
        methods,
        &layers[index].name,
        [channels, h, w],
        class,
        score,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two channels of a 1×2 stage: A = [[1, 2], [3, 0]], G = [[0.5, −0.5], [1, 2]].
    fn example() -> (Vec<f32>, Vec<f32>) {
        (vec![1.0, 2.0, 3.0, 0.0], vec![0.5, -0.5, 1.0, 2.0])
    }

    #[test]
    fn grad_cam_weights_are_mean_gradients() {
        let (a, g) = example();
        let (map, w) = cam_map(Method::GradCam, &a, &g, 2);
        assert_eq!(w.unwrap(), vec![0.0, 1.5]);
        // 0·[1, 2] + 1.5·[3, 0]
        assert_eq!(map, vec![4.5, 0.0]);
    }

    #[test]
    fn hires_and_layer_cam_weight_each_position() {
        let (a, g) = example();
        // Σ_c G⊙A = [0.5 + 3, −1 + 0]; ReLU → [3.5, 0]
        assert_eq!(cam_map(Method::HiResCam, &a, &g, 2).0, vec![3.5, 0.0]);
        // Σ_c ReLU(G)⊙A = [0.5 + 3, 0 + 0]
        assert_eq!(cam_map(Method::LayerCam, &a, &g, 2).0, vec![3.5, 0.0]);
        let (_, g_neg) = (a.clone(), vec![-1.0, -1.0, -1.0, -1.0]);
        assert_eq!(cam_map(Method::LayerCam, &a, &g_neg, 2).0, vec![0.0, 0.0]);
    }

    #[test]
    fn grad_cam_plus_plus_follows_the_closed_form() {
        let (a, g) = example();
        let (map, w) = cam_map(Method::GradCamPlusPlus, &a, &g, 2);
        let alpha = |g: f64, s: f64| g * g / (2.0 * g * g + s * g * g * g + 1e-6);
        // channel 0: Σ A = 3; only g = 0.5 is positive
        let w0 = 0.5 * alpha(0.5, 3.0);
        // channel 1: Σ A = 3; g = 1 and 2
        let w1 = alpha(1.0, 3.0) + 2.0 * alpha(2.0, 3.0);
        let w = w.unwrap();
        assert!((w[0] as f64 - w0).abs() < 1e-6 && (w[1] as f64 - w1).abs() < 1e-6);
        assert!((map[0] as f64 - (w0 + 3.0 * w1)).abs() < 1e-6);
        assert!((map[1] as f64 - 2.0 * w0).abs() < 1e-6);
    }

    #[test]
    fn zero_gradient_gives_an_all_zero_map_not_nan() {
        let (a, _) = example();
        for method in Method::CAMS {
            let (map, _) = cam_map(method, &a, &[0.0; 4], 2);
            assert_eq!(map, vec![0.0, 0.0], "{method}");
        }
    }
}
