//! Batched inference over a cached image set.

use anyhow::Result;
use burn::tensor::{Device, Tensor, TensorData};
use kdlens::{
    image::Preprocessing,
    model::{Classifier, LayeredClassifier},
    trust::{
        OodReference,
        ood::{DEFAULT_COMPONENTS, DEFAULT_QUANTILE},
        pooled_features,
    },
};

use crate::data::{ImageCache, augment::Transform};

/// Logits of every image of `cache` under `transform` (usually the identity), row-major
/// `[len, classes]`, in batches of `batch_size`.
pub fn logits(
    model: &Classifier,
    cache: &ImageCache,
    preprocessing: &Preprocessing,
    device: &Device,
    batch_size: usize,
    transform: Transform,
) -> Result<Vec<f32>> {
    let [h, w] = cache.size();
    let mut out = Vec::with_capacity(cache.len() * model.num_classes());
    let indices: Vec<usize> = (0..cache.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let values = cache.batch(chunk, |_| transform, preprocessing);
        let images =
            Tensor::<4>::from_data(TensorData::new(values, [chunk.len(), 3, h, w]), device);
        let logits = model.forward(images);
        out.extend(
            logits
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("cannot read logits: {e:?}"))?,
        );
    }
    Ok(out)
}

/// The out-of-distribution reference of a trained model: class means and the compact shared
/// covariance of its pooled last-stage features over (at most `limit`, evenly spread) training
/// images, with the threshold at the core's default quantile of the validation images' scores.
pub fn ood_reference(
    model: &Classifier,
    train: &ImageCache,
    val: &ImageCache,
    preprocessing: &Preprocessing,
    device: &Device,
    limit: usize,
) -> Result<OodReference> {
    let spread = |cache: &ImageCache| -> Vec<usize> {
        let stride = cache.len().div_ceil(limit.max(1)).max(1);
        (0..cache.len()).step_by(stride).collect()
    };
    let (train_indices, val_indices) = (spread(train), spread(val));
    let (features, _, dim) = pooled(model, train, &train_indices, preprocessing, device)?;
    let (validation, validation_logits, _) =
        pooled(model, val, &val_indices, preprocessing, device)?;
    let labels: Vec<usize> = train_indices.iter().map(|&i| train.labels()[i]).collect();
    Ok(OodReference::fit(
        &features,
        &labels,
        model.num_classes(),
        dim,
        &validation,
        &validation_logits,
        DEFAULT_COMPONENTS,
        DEFAULT_QUANTILE,
    )?)
}

/// Pooled last-stage features and logits of the images `indices` of `cache`, row-major, and
/// the features' width.
fn pooled(
    model: &Classifier,
    cache: &ImageCache,
    indices: &[usize],
    preprocessing: &Preprocessing,
    device: &Device,
) -> Result<(Vec<f32>, Vec<f32>, usize)> {
    let [h, w] = cache.size();
    let mut out = Vec::new();
    let mut logits = Vec::new();
    let mut dim = 0;
    for chunk in indices.chunks(32) {
        let values = cache.batch(chunk, |_| Transform::identity(), preprocessing);
        let images =
            Tensor::<4>::from_data(TensorData::new(values, [chunk.len(), 3, h, w]), device);
        let mut trace = model.forward_with_activations(images);
        let last = trace
            .activations
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the model has no stage to take features from"))?;
        logits.extend(
            trace
                .logits
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("cannot read logits: {e:?}"))?,
        );
        let features = pooled_features(last);
        dim = features.dims()[1];
        out.extend(
            features
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("cannot read features: {e:?}"))?,
        );
    }
    Ok((out, logits, dim))
}
