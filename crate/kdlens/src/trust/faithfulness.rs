//! Deletion and insertion curves (Petsiuk, Das & Saenko, "RISE", 2018).
//!
//! Pixels are ranked by a map (resized to the input, largest first). The *deletion* curve
//! replaces the first `i/k` of them by a black image and follows the class probability, which a
//! faithful map makes fall fast (low area). The *insertion* curve starts from a blurred copy of
//! the image and reveals the pixels in the same order (high area for a faithful map). A pixel
//! is a position: its three channels move together.

use burn::tensor::{Device, Tensor, TensorData, activation::softmax};
use serde::{Deserialize, Serialize};

use super::pixel_order;
use crate::{Error, Result, explain::Method, model::LayeredClassifier, read_f32};

/// One curve: the class probability after each step and the area under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// `steps + 1` probabilities, from 0 % to 100 % of the pixels changed.
    pub probabilities: Vec<f32>,
    /// Trapezoid area under the curve over `[0, 1]`.
    pub auc: f32,
}

/// The deletion and insertion curves of one map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faithfulness {
    /// The method whose map ordered the pixels.
    pub method: Method,
    /// The class whose probability is followed.
    pub class: usize,
    /// Pixels removed (set to black) most important first; lower area is better.
    pub deletion: Curve,
    /// Pixels revealed over a blurred image most important first; higher area is better.
    pub insertion: Curve,
}

/// Trapezoid area under equally spaced values on `[0, 1]` (0 for fewer than two points).
pub fn auc(values: &[f32]) -> f32 {
    if values.len() < 2 {
        return 0.0;
    }
    let steps = (values.len() - 1) as f64;
    let area: f64 = values
        .windows(2)
        .map(|w| (w[0] as f64 + w[1] as f64) / 2.0)
        .sum();
    (area / steps) as f32
}

/// The image `from` `[3, H·W]` with the first `count` positions of `order` taken from `to`.
fn swap_first(from: &[f32], to: &[f32], order: &[usize], count: usize) -> Vec<f32> {
    let plane = order.len();
    let mut image = from.to_vec();
    for &p in &order[..count] {
        for c in 0..3 {
            image[c * plane + p] = to[c * plane + p];
        }
    }
    image
}

/// Softmax probability of `class` for each of `images` (`n` inputs `[3, H, W]` back to back),
/// `batch_size` per forward pass.
async fn class_probabilities<M: LayeredClassifier>(
    model: &M,
    images: &[Vec<f32>],
    size: [usize; 2],
    class: usize,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let [h, w] = size;
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch_size.max(1)) {
        let values: Vec<f32> = chunk.concat();
        let batch = Tensor::<4>::from_data(TensorData::new(values, [chunk.len(), 3, h, w]), device);
        let probabilities = softmax(model.forward(batch), 1);
        let column = probabilities.slice([0..chunk.len(), class..class + 1]);
        out.extend(read_f32(column).await?);
    }
    Ok(out)
}

/// The deletion and insertion curves of `saliency` (`H·W` values at the input resolution) for
/// `class`, with `steps` steps: `input`, `removed` (what deletion puts in, e.g. a black image)
/// and `start` (where insertion starts, e.g. the blurred input) are `[3, H, W]` normalised
/// model inputs. All `2 · (steps + 1)` images go through the model `batch_size` at a time.
#[allow(clippy::too_many_arguments)]
pub async fn deletion_insertion<M: LayeredClassifier>(
    model: &M,
    input: &[f32],
    removed: &[f32],
    start: &[f32],
    size: [usize; 2],
    saliency: &[f32],
    class: usize,
    steps: usize,
    batch_size: usize,
    device: &Device,
) -> Result<(Curve, Curve)> {
    let plane = size[0] * size[1];
    if saliency.len() != plane || [input, removed, start].iter().any(|x| x.len() != 3 * plane) {
        return Err(Error::InvalidRequest(format!(
            "deletion/insertion need a {}×{} map and three [3, {}, {}] images",
            size[1], size[0], size[0], size[1]
        )));
    }
    if steps == 0 {
        return Err(Error::InvalidRequest(
            "deletion/insertion need at least one step".into(),
        ));
    }
    crate::explain::Target::Class(class).validate(model.num_classes())?;
    let order = pixel_order(saliency);
    let counts: Vec<usize> = (0..=steps)
        .map(|i| ((i as f64 * plane as f64 / steps as f64).round() as usize).min(plane))
        .collect();
    let mut images: Vec<Vec<f32>> = counts
        .iter()
        .map(|&n| swap_first(input, removed, &order, n))
        .collect();
    images.extend(counts.iter().map(|&n| swap_first(start, input, &order, n)));
    let mut probabilities =
        class_probabilities(model, &images, size, class, batch_size, device).await?;
    let insertion = probabilities.split_off(steps + 1);
    let curve = |probabilities: Vec<f32>| Curve {
        auc: auc(&probabilities),
        probabilities,
    };
    Ok((curve(probabilities), curve(insertion)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_of_a_line_and_of_a_step() {
        assert!((auc(&[1.0, 0.5, 0.0]) - 0.5).abs() < 1e-7);
        // (1 + 1)/2 + (1 + 0)/2 + 0 over three intervals
        assert!((auc(&[1.0, 1.0, 0.0, 0.0]) - 0.5).abs() < 1e-7);
        assert_eq!(auc(&[0.3]), 0.0);
    }

    #[test]
    fn swapping_moves_all_three_channels_of_a_position() {
        let from = vec![0.0; 6];
        let to: Vec<f32> = (1..=6).map(|v| v as f32).collect();
        // two positions; position 1 first
        assert_eq!(
            swap_first(&from, &to, &[1, 0], 1),
            vec![0.0, 2.0, 0.0, 4.0, 0.0, 6.0]
        );
    }
}
