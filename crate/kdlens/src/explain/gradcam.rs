//! Grad-CAM (Selvaraju et al., 2017) for any stage and any class.

use burn::tensor::{Tensor, activation::relu, activation::softmax};

use super::{CamScore, Heatmap, Target, feature_maps::check_single_image};
use crate::{
    Error, Result,
    model::{ForwardTrace, LayeredClassifier},
    read_f32,
};

/// A Grad-CAM result.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCam {
    /// The class explained.
    pub class: usize,
    /// The score whose gradient was followed.
    pub score: CamScore,
    /// `ReLU(Σ_c w_c · A_c)` at the stage's resolution; not normalised.
    pub raw: Heatmap,
    /// The channel weights `w_c`: the spatial mean of `∂score/∂A_c`, one per channel.
    pub weights: Vec<f32>,
}

impl GradCam {
    /// The map divided by its maximum (all zeros when nothing speaks for the class), then
    /// bilinearly resized to `size` — the authors' order of operations.
    pub fn display(&self, size: [usize; 2]) -> Heatmap {
        self.raw.max_normalized().resized(size)
    }
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

/// The raw Grad-CAM map of stage `layer` followed by its channel weights, flattened into one
/// tensor (`h·w + channels` values) on the device. Reuses the activations of an earlier forward
/// pass: only the part of the network after `layer` runs again, with the stage's output as the
/// leaf of a fresh autodiff graph.
pub(crate) fn cam_tensor<M: LayeredClassifier>(
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
    let weights = gradient.mean_dim(3).mean_dim(2);
    let cam = relu((activation.without_autodiff() * weights.clone()).sum_dim(1));
    Ok(Tensor::cat(
        vec![cam.flatten::<1>(0, 3), weights.flatten::<1>(0, 3)],
        0,
    ))
}

/// Splits what [`cam_tensor`] produced into a [`GradCam`].
pub(crate) fn unpack_cam(
    values: Vec<f32>,
    name: &str,
    size: [usize; 2],
    class: usize,
    score: CamScore,
) -> GradCam {
    let mut raw = values;
    let weights = raw.split_off(size[0] * size[1]);
    GradCam {
        class,
        score,
        raw: Heatmap::new(name, size, raw),
        weights,
    }
}

/// Grad-CAM of one image `[1, 3, H, W]` at stage `layer` (`None`: the last stage) for `target`.
pub async fn grad_cam<M: LayeredClassifier>(
    model: &M,
    input: Tensor<4>,
    layer: Option<&str>,
    target: Target,
    score: CamScore,
) -> Result<GradCam> {
    check_single_image(&input)?;
    target.validate(model.num_classes())?;
    let layers = model.layers();
    let index = match layer {
        Some(name) => model.layer_index(name)?,
        None => layers.len() - 1,
    };
    let trace = model.forward_with_activations(input);
    let [_, _, h, w] = trace.activations[index].dims();
    let cam = cam_tensor(model, &trace, index, target, score)?;
    let num_classes = trace.logits.dims()[1];
    let mut values = read_f32(Tensor::cat(vec![trace.logits.flatten::<1>(0, 1), cam], 0)).await?;
    let cam_values = values.split_off(num_classes);
    let class = resolve_class(target, &values);
    Ok(unpack_cam(
        cam_values,
        &layers[index].name,
        [h, w],
        class,
        score,
    ))
}

/// The class index a target stands for, given the image's logits.
pub(crate) fn resolve_class(target: Target, logits: &[f32]) -> usize {
    match target {
        Target::Class(c) => c,
        Target::Predicted => argmax(logits),
    }
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
