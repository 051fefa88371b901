//! A per-channel scale and shift followed by ReLU — a batch norm folded into its affine form and
//! its activation — in place over `[batch, channels, h, w]` `f32` values, compiled for the
//! vector unit a [`Path`] names.

use crate::{
    for_each_chunk,
    maximum::relu,
    simd::{Path, per_path},
};

/// Values per parallel task: whole planes, at least this many values.
const TASK_VALUES: usize = 16 * 1024;

/// `v ← max(0, v · scale[c] + shift[c])` for every value `v` of channel `c`, where `values` is
/// `[batch, channels, plane]` and `[scale, shift]` are `[channels]` each; on `path`.
///
/// # Panics
/// If `scale` and `shift` differ in length, or `values` is not whole planes of every channel.
pub fn scale_shift_relu(path: Path, values: &mut [f32], [scale, shift]: [&[f32]; 2], plane: usize) {
    assert_eq!(
        scale.len(),
        shift.len(),
        "scale_shift_relu: scale and shift"
    );
    if values.is_empty() || plane == 0 {
        return;
    }
    assert_eq!(
        values.len() % (plane * scale.len()),
        0,
        "scale_shift_relu: values are not whole planes of every channel"
    );
    let planes_per_task = TASK_VALUES.div_ceil(plane);
    for_each_chunk(values, planes_per_task * plane, |task, chunk| {
        planes(path, chunk, [scale, shift], plane, task * planes_per_task)
    });
}

per_path! {
    /// [`scale_shift_relu`] of whole planes, the first being plane `first` of the tensor.
    fn planes(path: Path, chunk: &mut [f32], affine: [&[f32]; 2], plane: usize, first: usize) {
        let [scale, shift] = affine;
        for (i, values) in chunk.chunks_exact_mut(plane).enumerate() {
            let c = (first + i) % scale.len();
            let (scale, shift) = (scale[c], shift[c]);
            for v in values {
                *v = relu(*v * scale + shift);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::available;

    #[test]
    fn every_path_scales_shifts_and_rectifies_each_channel() {
        // Two images, three channels, planes of 7: 42 values, past a vector of any width.
        let [batch, channels, plane] = [2, 3, 7];
        let scale = [2.0, -1.0, 0.5];
        let shift = [-1.0, 0.25, 3.0];
        let start: Vec<f32> = (0..batch * channels * plane)
            .map(|i| i as f32 * 0.5 - 10.0)
            .collect();
        for path in available() {
            let mut values = start.clone();
            scale_shift_relu(path, &mut values, [&scale, &shift], plane);
            for (i, (&got, &x)) in values.iter().zip(&start).enumerate() {
                let c = (i / plane) % channels;
                let want = (x * scale[c] + shift[c]).max(0.0);
                assert_eq!(got, want, "{path} at {i}");
            }
        }
    }

    #[test]
    fn each_plane_gets_its_channels_scale_and_shift_by_hand() {
        // Two images of two channels of 1×3 values; scales 2 and -1, shifts 1 and 0.5.
        let start = [
            -1.0, 0.0, 1.0, /* c1 */ -1.0, 0.0, 1.0, /* image 2, c0 */ 2.0, 3.0, -4.0,
            /* c1 */ 0.25, 0.5, 1.0,
        ];
        for path in available() {
            let mut values = start;
            scale_shift_relu(path, &mut values, [&[2.0, -1.0], &[1.0, 0.5]], 3);
            assert_eq!(
                values,
                [0.0, 1.0, 3.0, 1.5, 0.5, 0.0, 5.0, 7.0, 0.0, 0.25, 0.0, 0.0],
                "{path}"
            );
        }
    }
}
