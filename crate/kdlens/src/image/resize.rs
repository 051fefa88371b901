//! Bilinear resizing of one `f32` plane.

/// Resizes a row-major `[height, width]` plane to `[out_height, out_width]` with a bilinear
/// (triangle) filter on pixel centres.
///
/// Upsampling equals PyTorch's `F.interpolate(mode="bilinear", align_corners=False)`;
/// downsampling widens the filter to the scale factor (PyTorch's `antialias=True`, Pillow's
/// `BILINEAR`) so that large scans are averaged rather than aliased. Separable: rows first,
/// then columns.
///
/// # Panics
/// If `src.len() != height * width` or any size is zero (callers validate sizes first).
pub fn resize_plane(src: &[f32], size: [usize; 2], out: [usize; 2]) -> Vec<f32> {
    let [h, w] = size;
    let [oh, ow] = out;
    assert_eq!(src.len(), h * w, "plane of {h}×{w} needs {} values", h * w);
    assert!(h > 0 && w > 0 && oh > 0 && ow > 0, "sizes must be positive");
    if size == out {
        return src.to_vec();
    }
    let horizontal = Taps::new(w, ow);
    let vertical = Taps::new(h, oh);
    let mut rows = vec![0.0f32; h * ow];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        horizontal.apply(|x| row[x], &mut rows[y * ow..(y + 1) * ow]);
    }
    let mut result = vec![0.0f32; oh * ow];
    let mut column = vec![0.0f32; oh];
    for x in 0..ow {
        vertical.apply(|y| rows[y * ow + x], &mut column);
        for (y, v) in column.iter().enumerate() {
            result[y * ow + x] = *v;
        }
    }
    result
}

/// Filter taps along one axis: for every output index, the first input index and its weights.
struct Taps {
    starts: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

impl Taps {
    fn new(input: usize, output: usize) -> Self {
        let scale = input as f64 / output as f64;
        let support = scale.max(1.0);
        let mut starts = Vec::with_capacity(output);
        let mut weights = Vec::with_capacity(output);
        for o in 0..output {
            let centre = (o as f64 + 0.5) * scale;
            let first = ((centre - support).floor().max(0.0)) as usize;
            let last = ((centre + support).ceil() as usize).min(input);
            let mut taps: Vec<f64> = (first..last)
                .map(|i| (1.0 - ((i as f64 + 0.5 - centre) / support).abs()).max(0.0))
                .collect();
            let total: f64 = taps.iter().sum();
            if total > 0.0 {
                taps.iter_mut().for_each(|t| *t /= total);
            } else {
                // The centre fell exactly between taps of zero weight (cannot happen for
                // positive sizes, kept for safety): take the nearest pixel.
                taps = vec![1.0];
            }
            starts.push(first);
            weights.push(taps.into_iter().map(|t| t as f32).collect());
        }
        Self { starts, weights }
    }

    fn apply(&self, get: impl Fn(usize) -> f32, out: &mut [f32]) {
        for (o, slot) in out.iter_mut().enumerate() {
            let start = self.starts[o];
            *slot = self.weights[o]
                .iter()
                .enumerate()
                .map(|(k, w)| w * get(start + k))
                .sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_returns_the_input() {
        let src = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(resize_plane(&src, [2, 2], [2, 2]), src);
    }

    #[test]
    fn upsampling_two_pixels_matches_half_pixel_bilinear() {
        // PyTorch: F.interpolate(tensor([[[[0., 4.]]]]), size=(1, 4), mode="bilinear",
        // align_corners=False) == [0, 1, 3, 4]
        let out = resize_plane(&[0.0, 4.0], [1, 2], [1, 4]);
        assert_eq!(out, vec![0.0, 1.0, 3.0, 4.0]);
    }

    #[test]
    fn downsampling_by_two_averages_pairs() {
        // Triangle filter of support 2 centred between two pixels: weights 1/4, 3/4, 3/4, 1/4
        // (normalised) over four neighbours; at the borders the missing taps are dropped.
        let src = [0.0, 0.0, 8.0, 8.0];
        let out = resize_plane(&src, [1, 4], [1, 2]);
        // centre 1.0: taps x=0 (w .75), x=1 (.75), x=2 (.25) → (0 + 0 + 2) / 1.75
        assert!((out[0] - 2.0 / 1.75).abs() < 1e-6, "{out:?}");
        assert!((out[1] - (8.0 - 2.0 / 1.75)).abs() < 1e-6, "{out:?}");
    }

    #[test]
    fn constant_planes_stay_constant_at_any_scale() {
        let src = vec![0.25; 7 * 5];
        for out in [[224, 224], [3, 2], [7, 40]] {
            assert!(
                resize_plane(&src, [7, 5], out)
                    .iter()
                    .all(|v| (v - 0.25).abs() < 1e-6)
            );
        }
    }
}
