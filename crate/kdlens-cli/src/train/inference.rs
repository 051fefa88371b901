//! Batched inference over a cached image set.

use anyhow::Result;
use burn::tensor::{Device, Tensor, TensorData};
use kdlens::{
    block_on,
    image::Preprocessing,
    model::{Classifier, LayeredClassifier},
    trust::{OodReference, reference_sample},
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

/// The out-of-distribution reference of a trained model ([`OodReference::of_model`]) from at
/// most `limit` training and `limit` validation images, spread over each split's classes.
pub fn ood_reference(
    model: &Classifier,
    train: &ImageCache,
    val: &ImageCache,
    preprocessing: &Preprocessing,
    device: &Device,
    limit: usize,
) -> Result<OodReference> {
    let validation = reference_batches(val, limit, preprocessing, device).map(|(images, _)| images);
    Ok(block_on(OodReference::of_model(
        model,
        reference_batches(train, limit, preprocessing, device),
        validation,
    ))?)
}

/// Batches of 32 images (`[n, 3, H, W]`) of [`reference_sample`] of `cache`, with their labels.
fn reference_batches<'a>(
    cache: &'a ImageCache,
    limit: usize,
    preprocessing: &'a Preprocessing,
    device: &'a Device,
) -> impl Iterator<Item = (Tensor<4>, Vec<usize>)> + 'a {
    let [h, w] = cache.size();
    let chosen = reference_sample(cache.labels(), limit);
    let batches: Vec<Vec<usize>> = chosen.chunks(32).map(<[usize]>::to_vec).collect();
    batches.into_iter().map(move |indices| {
        let values = cache.batch(&indices, |_| Transform::identity(), preprocessing);
        let images =
            Tensor::<4>::from_data(TensorData::new(values, [indices.len(), 3, h, w]), device);
        let labels = indices.iter().map(|&i| cache.labels()[i]).collect();
        (images, labels)
    })
}
