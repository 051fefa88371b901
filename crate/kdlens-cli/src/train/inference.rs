//! Batched inference over a cached image set.

use anyhow::Result;
use burn::tensor::{Device, Tensor, TensorData};
use kdlens::{
    image::Preprocessing,
    model::{Classifier, LayeredClassifier},
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
