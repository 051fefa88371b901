//! A 2-D map of scores over an image.

use serde::{Deserialize, Serialize};

use crate::image::resize_plane;

/// A row-major `[height, width]` map of `f32` values, named after the stage it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heatmap {
    /// Stage (layer) name, e.g. `conv5`.
    pub layer: String,
    /// `[height, width]`.
    pub size: [usize; 2],
    /// `height · width` values, row-major.
    pub values: Vec<f32>,
}

impl Heatmap {
    /// A map from its parts.
    ///
    /// # Panics
    /// If `values.len() != size[0] * size[1]`.
    pub fn new(layer: impl Into<String>, size: [usize; 2], values: Vec<f32>) -> Self {
        assert_eq!(
            values.len(),
            size[0] * size[1],
            "heatmap size and values disagree"
        );
        Self {
            layer: layer.into(),
            size,
            values,
        }
    }

    /// Smallest and largest value.
    pub fn range(&self) -> (f32, f32) {
        self.values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    /// Bilinearly resized to `[height, width]` (see [`resize_plane`]).
    pub fn resized(&self, size: [usize; 2]) -> Heatmap {
        Heatmap::new(
            self.layer.clone(),
            size,
            resize_plane(&self.values, self.size, size),
        )
    }

    /// Rescaled to `[0, 1]` by `(v − min) / (max − min)`. A constant map (no contrast to show)
    /// becomes all zeros rather than NaN.
    pub fn min_max_normalized(&self) -> Heatmap {
        let (lo, hi) = self.range();
        let span = hi - lo;
        let values = if span > 0.0 && span.is_finite() {
            self.values.iter().map(|v| (v - lo) / span).collect()
        } else {
            vec![0.0; self.values.len()]
        };
        Heatmap::new(self.layer.clone(), self.size, values)
    }

    /// Divided by its maximum (Grad-CAM's normalisation). A map whose maximum is not positive
    /// (no evidence for the class) becomes all zeros rather than NaN.
    pub fn max_normalized(&self) -> Heatmap {
        let (_, hi) = self.range();
        let values = if hi > 0.0 && hi.is_finite() {
            self.values.iter().map(|v| v / hi).collect()
        } else {
            vec![0.0; self.values.len()]
        };
        Heatmap::new(self.layer.clone(), self.size, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_maps_extremes_to_zero_and_one() {
        let map = Heatmap::new("l", [1, 3], vec![-2.0, 0.0, 2.0]).min_max_normalized();
        assert_eq!(map.values, vec![0.0, 0.5, 1.0]);
    }

    #[test]
    fn constant_map_normalises_to_zeros_not_nan() {
        let map = Heatmap::new("l", [2, 2], vec![3.0; 4]);
        assert_eq!(map.min_max_normalized().values, vec![0.0; 4]);
        assert_eq!(
            Heatmap::new("l", [1, 2], vec![0.0; 2])
                .max_normalized()
                .values,
            vec![0.0; 2]
        );
    }

    #[test]
    fn max_normalisation_keeps_zero_at_zero() {
        let map = Heatmap::new("l", [1, 3], vec![0.0, 1.0, 4.0]).max_normalized();
        assert_eq!(map.values, vec![0.0, 0.25, 1.0]);
    }
}
