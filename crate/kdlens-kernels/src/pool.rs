//! Max and average pooling of `[batch, channels, h, w]` `f32` values, plane by plane (in
//! parallel), compiled for the vector unit a [`Path`] names.

use crate::{
    for_each_chunk,
    maximum::max,
    simd::{Path, per_path},
};

/// A pooling window: `kernel` rows × columns, moved by `stride`, over an input with `padding`
/// rows and columns added on each side (ignored by the maximum; average pools have none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Rows and columns of the window.
    pub kernel: [usize; 2],
    /// Step between windows along rows and columns.
    pub stride: [usize; 2],
    /// Implicit padding on each side along rows and columns.
    pub padding: [usize; 2],
}

impl Window {
    /// The output size for an input of `[h, w]` (floor mode, as PyTorch's default).
    pub fn out_size(&self, [h, w]: [usize; 2]) -> [usize; 2] {
        let along =
            |i: usize, n: usize| (n + 2 * self.padding[i] - self.kernel[i]) / self.stride[i] + 1;
        [along(0, h), along(1, w)]
    }

    /// Whether kdlens' loops compute this window on an input of `[h, w]`: at least one full
    /// window fits and padding stays below the kernel, so every window holds an input value.
    pub fn fits(&self, [h, w]: [usize; 2]) -> bool {
        (0..2).all(|i| {
            self.kernel[i] > 0
                && self.stride[i] > 0
                && self.padding[i] < self.kernel[i]
                && [h, w][i] + 2 * self.padding[i] >= self.kernel[i]
        })
    }
}

/// Which pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The maximum of each window (padding excluded).
    Max,
    /// The mean of each window (no padding: every window is full).
    Average,
}

/// `pooling` with `window` of `values` (`planes` planes of `h × w`): `[planes, out_h, out_w]`, on
/// `path`.
///
/// # Panics
/// If `values` does not hold `planes · h · w` floats, `window` does not [`Window::fits`] or an
/// average pool is padded.
pub fn pool(
    path: Path,
    values: &[f32],
    [planes, h, w]: [usize; 3],
    window: Window,
    pooling: Pooling,
) -> Vec<f32> {
    assert_eq!(values.len(), planes * h * w, "pool: input length");
    assert!(window.fits([h, w]), "pool: window does not fit");
    assert!(
        pooling == Pooling::Max || window.padding == [0, 0],
        "pool: padded average"
    );
    let [oh, ow] = window.out_size([h, w]);
    let mut out = vec![0.0; planes * oh * ow];
    if !out.is_empty() {
        for_each_chunk(&mut out, oh * ow, |p, out| {
            let plane = &values[p * h * w..(p + 1) * h * w];
            match pooling {
                Pooling::Max => max_pool_plane(path, plane, [h, w], out, window),
                Pooling::Average => avg_pool_plane(path, plane, [h, w], out, window),
            }
        });
    }
    out
}

/// The input positions `first..end` along one axis that output position `o`'s window covers.
#[inline(always)]
fn covered(o: usize, axis: usize, window: Window, len: usize) -> std::ops::Range<usize> {
    let start = (o * window.stride[axis]) as isize - window.padding[axis] as isize;
    let end = (start + window.kernel[axis] as isize).clamp(0, len as isize) as usize;
    start.clamp(0, len as isize) as usize..end
}

per_path! {
    /// Max-pooling of one `h × w` plane into `out`: the maxima along rows first, then down columns.
    fn max_pool_plane(path: Path, plane: &[f32], hw: [usize; 2], out: &mut [f32], window: Window) {
        let ([h, w], [_, ow]) = (hw, window.out_size(hw));
        if window
            == (Window {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
            })
        {
            return max_pool_2x2_plane(plane, w, out);
        }
        let mut row_maxima = vec![f32::NEG_INFINITY; h * ow];
        for (row, maxima) in plane.chunks_exact(w).zip(row_maxima.chunks_exact_mut(ow)) {
            for (ox, m) in maxima.iter_mut().enumerate() {
                *m = row[covered(ox, 1, window, w)]
                    .iter()
                    .copied()
                    .fold(f32::NEG_INFINITY, max);
            }
        }
        for (oy, out_row) in out.chunks_exact_mut(ow).enumerate() {
            out_row.fill(f32::NEG_INFINITY);
            for iy in covered(oy, 0, window, h) {
                for (o, &m) in out_row.iter_mut().zip(&row_maxima[iy * ow..(iy + 1) * ow]) {
                    *o = max(*o, m);
                }
            }
        }
    }
}

/// The 2×2, stride-2 case of [`max_pool_plane`] in one pass (the students' pooling; a last odd
/// row or column is dropped).
#[inline(always)]
fn max_pool_2x2_plane(plane: &[f32], w: usize, out: &mut [f32]) {
    let w2 = w / 2;
    for (i, row) in out.chunks_exact_mut(w2).enumerate() {
        let (top, bottom) = (&plane[2 * i * w..][..w], &plane[(2 * i + 1) * w..][..w]);
        for (j, v) in row.iter_mut().enumerate() {
            *v = max(
                max(top[2 * j], top[2 * j + 1]),
                max(bottom[2 * j], bottom[2 * j + 1]),
            );
        }
    }
}

per_path! {
    /// Average pooling of one `h × w` plane into `out` (no padding: every window is full).
    fn avg_pool_plane(path: Path, plane: &[f32], hw: [usize; 2], out: &mut [f32], window: Window) {
        let ([h, w], [_, ow]) = (hw, window.out_size(hw));
        let scale = 1.0 / (window.kernel[0] * window.kernel[1]) as f32;
        for (oy, out_row) in out.chunks_exact_mut(ow).enumerate() {
            out_row.fill(0.0);
            for iy in covered(oy, 0, window, h) {
                let row = &plane[iy * w..(iy + 1) * w];
                for (ox, o) in out_row.iter_mut().enumerate() {
                    *o += row[covered(ox, 1, window, w)].iter().sum::<f32>();
                }
            }
            out_row.iter_mut().for_each(|o| *o *= scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::available;

    /// Pooling by its definition: every window's values, padding excluded.
    fn definition(
        values: &[f32],
        [planes, h, w]: [usize; 3],
        window: Window,
        pooling: Pooling,
    ) -> Vec<f32> {
        let [oh, ow] = window.out_size([h, w]);
        let mut out = Vec::new();
        for p in 0..planes {
            for oy in 0..oh {
                for ox in 0..ow {
                    let covered: Vec<f32> = covered(oy, 0, window, h)
                        .flat_map(|y| covered(ox, 1, window, w).map(move |x| (y, x)))
                        .map(|(y, x)| values[(p * h + y) * w + x])
                        .collect();
                    out.push(match pooling {
                        Pooling::Max => covered.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                        Pooling::Average => covered.iter().sum::<f32>() / covered.len() as f32,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn every_path_pools_as_the_definition() {
        let window = |k, s, p| Window {
            kernel: [k, k],
            stride: [s, s],
            padding: [p, p],
        };
        let cases = [
            (window(2, 2, 0), Pooling::Max, [3, 9, 11]),
            (window(3, 2, 1), Pooling::Max, [2, 12, 13]),
            (window(2, 2, 0), Pooling::Average, [3, 8, 10]),
            (window(3, 1, 0), Pooling::Average, [2, 7, 9]),
        ];
        for (window, pooling, dims @ [planes, h, w]) in cases {
            let values: Vec<f32> = (0..planes * h * w)
                .map(|i| ((i * 37) % 23) as f32 - 11.0)
                .collect();
            let want = definition(&values, dims, window, pooling);
            for path in available() {
                let got = pool(path, &values, dims, window, pooling);
                assert_eq!(got.len(), want.len());
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-6,
                        "{path} {pooling:?} {window:?} at {i}: {g} vs {w}"
                    );
                }
            }
        }
    }

    const TWO_BY_TWO: Window = Window {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
    };

    #[test]
    fn maxima_of_blocks_drop_a_last_odd_row_and_column() {
        // A 3×5 plane of values 0..15 and one of their negatives.
        let x: Vec<f32> = (0..15).map(|v| v as f32).collect();
        let negated: Vec<f32> = x.iter().map(|v| -v).collect();
        for path in available() {
            assert_eq!(
                pool(path, &x, [1, 3, 5], TWO_BY_TWO, Pooling::Max),
                [6.0, 8.0]
            );
            let out = pool(path, &negated, [1, 3, 5], TWO_BY_TWO, Pooling::Max);
            assert_eq!(out, [-0.0, -2.0], "{path}");
        }
    }

    #[test]
    fn padded_windows_take_the_maximum_of_the_values_they_cover() {
        // 4×4 plane, values 0..16 with the first made the largest; 3×3 windows, stride 2,
        // padding 1: windows cover rows/columns {0, 1} and {1, 2, 3}.
        let mut x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        x[0] = 100.0;
        let window = Window {
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
        };
        for path in available() {
            let out = pool(path, &x, [1, 4, 4], window, Pooling::Max);
            assert_eq!(out, [100.0, 7.0, 13.0, 15.0], "{path}");
        }
    }

    #[test]
    fn averages_of_blocks() {
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        for path in available() {
            let out = pool(path, &x, [1, 4, 4], TWO_BY_TWO, Pooling::Average);
            assert_eq!(out, [2.5, 4.5, 10.5, 12.5], "{path}");
        }
    }
}
