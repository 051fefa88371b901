//! KD-FMV: the channel-mean feature map of every stage.

use burn::tensor::Tensor;

use super::Heatmap;
use crate::{
    Error, Result,
    model::{ForwardTrace, LayeredClassifier},
    read_f32,
};

/// The logits and the raw (un-normalised) channel mean of every stage for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMaps {
    /// Logits of the image, one per class.
    pub logits: Vec<f32>,
    /// One map per stage, at the stage's resolution: `mean over channels of A[c, y, x]`.
    pub maps: Vec<Heatmap>,
}

/// Checks that an explanation input is a single image `[1, 3, H, W]`.
pub(crate) fn check_single_image(input: &Tensor<4>) -> Result<()> {
    let [batch, channels, _, _] = input.dims();
    if batch != 1 || channels != 3 {
        return Err(Error::InvalidRequest(format!(
            "explanations take one RGB image [1, 3, H, W], got [{batch}, {channels}, …]"
        )));
    }
    Ok(())
}

/// The logits followed by every stage's channel-mean map, flattened into one tensor so that a
/// single read-back fetches them all.
pub(crate) fn pack(trace: &ForwardTrace) -> Tensor<1> {
    let mut parts: Vec<Tensor<1>> = vec![trace.logits.clone().flatten::<1>(0, 1)];
    parts.extend(
        trace
            .activations
            .iter()
            .map(|a| a.clone().mean_dim(1).flatten::<1>(0, 3)),
    );
    Tensor::cat(parts, 0)
}

/// Splits what [`pack`] produced back into logits and named maps.
pub(crate) fn unpack(values: &[f32], trace: &ForwardTrace, names: &[String]) -> FeatureMaps {
    let num_classes = trace.logits.dims()[1];
    let logits = values[..num_classes].to_vec();
    let mut offset = num_classes;
    let maps = trace
        .activations
        .iter()
        .zip(names)
        .map(|(a, name)| {
            let [_, _, h, w] = a.dims();
            let map = Heatmap::new(
                name.clone(),
                [h, w],
                values[offset..offset + h * w].to_vec(),
            );
            offset += h * w;
            map
        })
        .collect();
    FeatureMaps { logits, maps }
}

/// The channel mean of every stage's activation for one image `[1, 3, H, W]`, and its logits.
pub async fn feature_maps<M: LayeredClassifier>(
    model: &M,
    input: Tensor<4>,
) -> Result<FeatureMaps> {
    check_single_image(&input)?;
    let trace = model.forward_with_activations(input);
    let values = read_f32(pack(&trace)).await?;
    let names: Vec<String> = model.layers().into_iter().map(|l| l.name).collect();
    Ok(unpack(&values, &trace, &names))
}
