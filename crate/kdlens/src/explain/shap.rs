//! SHAP values by expected gradients — what `shap.GradientExplainer` computes (Erion et al.,
//! 2021; Lundberg & Lee, 2017).
//!
//! For an input `x`, a background set `B` and `n` draws `(b_j, t_j)` with `b_j` uniform over `B`
//! and `t_j ~ U(0, 1)`:
//!
//! `φ(x) = 1/n · Σ_j ∂f_c/∂x (b_j + t_j·(x − b_j)) ⊙ (x − b_j)`
//!
//! an unbiased estimate of the path integral whose sum satisfies completeness in expectation:
//! `Σ φ ≈ f_c(x) − E_b[f_c(b)]`.

use burn::tensor::{Int, Tensor, TensorData};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use super::{Heatmap, Progress, feature_maps::check_single_image};
use crate::{Error, Result, model::LayeredClassifier, read_f32};

/// How expected gradients are sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedGradients {
    /// `(background index, interpolation t)` for every sample; see [`ExpectedGradients::seeded`].
    pub draws: Vec<(usize, f32)>,
    /// Samples evaluated per forward/backward pass (bounds memory; results do not depend on it).
    pub batch_size: usize,
}

impl ExpectedGradients {
    /// `samples` draws (the SHAP default is 200) from a seeded generator over a background set
    /// of `background_len` images, evaluated `batch_size` at a time.
    pub fn seeded(samples: usize, background_len: usize, seed: u64, batch_size: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let draws = (0..samples)
            .map(|_| {
                (
                    rng.random_range(0..background_len.max(1)),
                    rng.random::<f32>(),
                )
            })
            .collect();
        Self { draws, batch_size }
    }
}

/// Input attributions of one class (expected gradients or integrated gradients).
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// The class explained.
    pub class: usize,
    /// Attributions `[3, H, W]`, row-major per channel, in logit units.
    pub values: Vec<f32>,
    /// `[H, W]` of the input.
    pub size: [usize; 2],
    /// The model's logit for the class at the input, `f_c(x)`.
    pub output: f32,
    /// The reference output the attributions are measured from: for SHAP the mean logit of the
    /// class over the background set, `E_b[f_c(b)]` (SHAP's `expected_value`); for integrated
    /// gradients the class logit at the baseline, `f_c(x')`.
    pub expected_value: f32,
}

impl Attribution {
    /// `Σ φ`, which approximates `output − expected_value` (completeness).
    pub fn total(&self) -> f32 {
        self.values.iter().map(|&v| v as f64).sum::<f64>() as f32
    }

    /// The attribution summed over the colour channels, as `shap.image_plot` draws it (signed),
    /// named `layer` (`input`).
    pub fn map(&self) -> Heatmap {
        let plane = self.size[0] * self.size[1];
        let values = (0..plane)
            .map(|i| self.values[i] + self.values[plane + i] + self.values[2 * plane + i])
            .collect();
        Heatmap::new("input", self.size, values)
    }
}

/// `∂f_c/∂x` at each of `points` `[n, 3, H, W]`: one forward and one backward pass of the batch
/// (the class logits summed, so each point gets its own gradient).
pub(crate) fn class_input_gradient<M: LayeredClassifier>(
    model: &M,
    points: Tensor<4>,
    class: usize,
) -> Result<Tensor<4>> {
    let n = points.dims()[0];
    let points = points.autodiff().require_grad();
    let logits = model.forward(points.clone());
    let grads = logits.slice([0..n, class..class + 1]).sum().backward();
    points.grad(&grads).ok_or_else(|| {
        Error::InvalidRequest("no gradient reached the input from the class score".into())
    })
}

/// Expected-gradients attributions of one image `[1, 3, H, W]` against `background`
/// `[B, 3, H, W]`, for each class in `classes` (logit outputs).
///
/// Every sample needs a forward and a backward pass; samples are evaluated in batches of
/// `plan.batch_size`, and each class repeats the passes (each backward consumes its graph).
pub async fn expected_gradients<M: LayeredClassifier>(
    model: &M,
    input: Tensor<4>,
    background: Tensor<4>,
    classes: &[usize],
    plan: &ExpectedGradients,
) -> Result<Vec<Attribution>> {
    expected_gradients_with_progress(model, input, background, classes, plan, None).await
}

/// [`expected_gradients`], telling `progress` the samples done (over all classes) after each
/// batch.
pub async fn expected_gradients_with_progress<M: LayeredClassifier>(
    model: &M,
    input: Tensor<4>,
    background: Tensor<4>,
    classes: &[usize],
    plan: &ExpectedGradients,
    progress: Option<Progress<'_>>,
) -> Result<Vec<Attribution>> {
    check_single_image(&input)?;
    let [background_len, c, h, w] = background.dims();
    let [_, _, ih, iw] = input.dims();
    if background_len == 0 || [c, h, w] != [3, ih, iw] {
        return Err(Error::InvalidRequest(format!(
            "the background must be a non-empty [B, 3, {ih}, {iw}] batch, got [{background_len}, {c}, {h}, {w}]"
        )));
    }
    if plan.draws.is_empty() || plan.batch_size == 0 {
        return Err(Error::InvalidRequest(
            "expected gradients need at least one sample and a positive batch size".into(),
        ));
    }
    if let Some(&(index, _)) = plan.draws.iter().find(|(i, _)| *i >= background_len) {
        return Err(Error::InvalidRequest(format!(
            "sample draws background image {index} of {background_len}"
        )));
    }
    for &class in classes {
        crate::explain::Target::Class(class).validate(model.num_classes())?;
    }
    let input = input.without_autodiff();
    let background = background.without_autodiff();
    let plain_device = input.device();

    let num_classes = model.num_classes();
    let background_logits = read_f32(model.forward(background.clone())).await?;
    let logits = read_f32(model.forward(input.clone())).await?;

    let total = plan.draws.len() * classes.len();
    let mut done = 0;
    let mut results = Vec::with_capacity(classes.len());
    for &class in classes {
        let mut sum: Option<Tensor<4>> = None;
        for chunk in plan.draws.chunks(plan.batch_size) {
            let n = chunk.len();
            let indices: Vec<i64> = chunk.iter().map(|&(i, _)| i as i64).collect();
            let ts: Vec<f32> = chunk.iter().map(|&(_, t)| t).collect();
            let chosen = background.clone().select(
                0,
                Tensor::<1, Int>::from_data(TensorData::new(indices, [n]), &plain_device),
            );
            let t = Tensor::<4>::from_data(TensorData::new(ts, [n, 1, 1, 1]), &plain_device);
            let delta = input.clone().expand([n, 3, ih, iw]) - chosen.clone();
            let points = chosen.clone() + delta.clone() * t;
            let contribution = (class_input_gradient(model, points, class)? * delta).sum_dim(0);
            sum = Some(match sum {
                Some(s) => s + contribution,
                None => contribution,
            });
            done += n;
            if let Some(progress) = progress {
                progress.report("shap", done, total);
            }
        }
        let mean = sum.expect("at least one chunk") / plan.draws.len() as f32;
        let expected_value = background_logits
            .chunks_exact(num_classes)
            .map(|row| row[class] as f64)
            .sum::<f64>()
            / background_len as f64;
        results.push(Attribution {
            class,
            values: read_f32(mean).await?,
            size: [ih, iw],
            output: logits[class],
            expected_value: expected_value as f32,
        });
    }
    Ok(results)
}
