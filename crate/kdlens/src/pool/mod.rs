//! The models' pooling layers — the students' 2×2 max-pool, DenseNet's 3×3 stride-2 stem max-pool
//! and 2×2 average pools — as one burn backend extension: on `flex` kdlens' loops (burn's CPU
//! pooling kernels are scalar: the stem's max-pool alone took 5 ms, 8 % of DenseNet-121's forward
//! pass), on the CubeCL backends burn's kernels, inside a graph burn's backward passes (a tracked
//! max-pool also takes burn's forward, which records the positions of the maxima).

use crate::{
    conv::cpu::for_each_chunk,
    flex_tensor::{contiguous, dims4, f32s, from_f32s},
    maximum::max,
};

use burn::{
    backend::{
        Autodiff, Backend, Cube, Dispatch, Flex, TensorMetadata,
        autodiff::{
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        backend_extension,
        flex::FlexTensor,
        get_or_init_device_settings,
        ops::ModuleOps,
        tensor::{FloatTensor, IntTensor},
    },
    tensor::{DType, Tensor},
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
    fn fits(&self, [h, w]: [usize; 2]) -> bool {
        (0..2).all(|i| {
            self.kernel[i] > 0
                && self.stride[i] > 0
                && self.padding[i] < self.kernel[i]
                && [h, w][i] + 2 * self.padding[i] >= self.kernel[i]
        })
    }
}

/// A backend that runs kdlens' pooling; every method defaults to burn's.
#[backend_extension(Flex, Cube: cfg(all()), Autodiff)]
pub trait PoolBackend: Backend {
    /// The maximum of each window of `x` `[batch, channels, h, w]` (padding excluded).
    fn kd_max_pool2d(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        Self::max_pool2d(
            x,
            window.kernel,
            window.stride,
            window.padding,
            [1, 1],
            false,
        )
    }

    /// The mean of each window of `x` `[batch, channels, h, w]` (`window` without padding).
    fn kd_avg_pool2d(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        Self::avg_pool2d(x, window.kernel, window.stride, window.padding, true, false)
    }
}

/// burn's kernels on the GPU.
impl PoolBackend for Cube {}

/// kdlens' loops for contiguous `f32`; burn's for the rest.
impl PoolBackend for Flex {
    fn kd_max_pool2d(x: FlexTensor, window: Window) -> FlexTensor {
        match pool_geometry(&x, window) {
            Some(dims) => pool_each_plane(x, dims, window, max_pool_plane),
            None => Flex::max_pool2d(
                x,
                window.kernel,
                window.stride,
                window.padding,
                [1, 1],
                false,
            ),
        }
    }

    fn kd_avg_pool2d(x: FlexTensor, window: Window) -> FlexTensor {
        match pool_geometry(&x, window).filter(|_| window.padding == [0, 0]) {
            Some(dims) => pool_each_plane(x, dims, window, avg_pool_plane),
            None => Flex::avg_pool2d(x, window.kernel, window.stride, window.padding, true, false),
        }
    }
}

/// The dimensions of `x` where kdlens' loops pool it with `window`.
fn pool_geometry(x: &FlexTensor, window: Window) -> Option<[usize; 4]> {
    let dims = dims4(x.shape().as_slice())?;
    (x.dtype() == DType::F32 && window.fits([dims[2], dims[3]])).then_some(dims)
}

/// `pool_plane(input plane, [h, w], output plane, window)` on every plane of `x`, in parallel.
fn pool_each_plane(
    x: FlexTensor,
    [batch, channels, h, w]: [usize; 4],
    window: Window,
    pool_plane: fn(&[f32], [usize; 2], &mut [f32], Window),
) -> FlexTensor {
    let x = contiguous(x);
    let values = f32s(&x);
    let [oh, ow] = window.out_size([h, w]);
    let mut out = vec![0.0; batch * channels * oh * ow];
    if !out.is_empty() {
        for_each_chunk(&mut out, oh * ow, |p, out| {
            pool_plane(&values[p * h * w..(p + 1) * h * w], [h, w], out, window);
        });
    }
    from_f32s(out, [batch, channels, oh, ow])
}

/// The input positions `first..end` along one axis that output position `o`'s window covers.
fn covered(o: usize, axis: usize, window: Window, len: usize) -> std::ops::Range<usize> {
    let start = (o * window.stride[axis]) as isize - window.padding[axis] as isize;
    let end = (start + window.kernel[axis] as isize).clamp(0, len as isize) as usize;
    start.clamp(0, len as isize) as usize..end
}

/// Max-pooling of one `h × w` plane into `out`: the maxima along rows first, then down columns.
fn max_pool_plane(plane: &[f32], [h, w]: [usize; 2], out: &mut [f32], window: Window) {
    let [_, ow] = window.out_size([h, w]);
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

/// The 2×2, stride-2 case of [`max_pool_plane`] in one pass (the students' pooling; a last odd
/// row or column is dropped).
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

/// Average pooling of one `h × w` plane into `out` (no padding: every window is full).
fn avg_pool_plane(plane: &[f32], [h, w]: [usize; 2], out: &mut [f32], window: Window) {
    let [_, ow] = window.out_size([h, w]);
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

/// Inside a graph: a max-pool with nothing to differentiate runs the inner backend's
/// [`PoolBackend`]; a tracked one runs burn's forward, which keeps the positions of the maxima,
/// and burn's backward. Average pools run the inner backend's forward and burn's backward.
impl<B: PoolBackend, C: CheckpointStrategy> PoolBackend for Autodiff<B, C> {
    fn kd_max_pool2d(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match MaxPoolBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let int_dtype = get_or_init_device_settings::<B>(&x.device()).int_dtype;
                let pooled = B::max_pool2d_with_indices(
                    x.clone(),
                    window.kernel,
                    window.stride,
                    window.padding,
                    [1, 1],
                    false,
                    int_dtype,
                );
                prep.finish((x, pooled.indices, window), pooled.output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kd_max_pool2d(x, window)),
        }
    }

    fn kd_avg_pool2d(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        let (x, node) = x.into_parts();
        match AvgPoolBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::kd_avg_pool2d(x.clone(), window);
                prep.finish((x, window), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kd_avg_pool2d(x, window)),
        }
    }
}

#[derive(Debug)]
struct MaxPoolBackward;

impl<B: Backend> Backward<B, 1> for MaxPoolBackward {
    /// The input, the positions of the maxima and the window.
    type State = (FloatTensor<B>, IntTensor<B>, Window);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [Some(node)] = ops.parents else { return };
        let (x, indices, w) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let backward = B::max_pool2d_with_indices_backward(
            x,
            w.kernel,
            w.stride,
            w.padding,
            [1, 1],
            false,
            grad,
            indices,
        );
        grads.register::<B>(node.id, backward.x_grad);
    }
}

#[derive(Debug)]
struct AvgPoolBackward;

impl<B: Backend> Backward<B, 1> for AvgPoolBackward {
    /// The input and the window.
    type State = (FloatTensor<B>, Window);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [Some(node)] = ops.parents else { return };
        let (x, w) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let x_grad = B::avg_pool2d_backward(x, grad, w.kernel, w.stride, w.padding, true, false);
        grads.register::<B>(node.id, x_grad);
    }
}

/// Max-pooling of `x` (`[batch, channels, h, w]`) with `window`, on any backend; differentiable.
pub fn max_pool2d(x: Tensor<4>, window: Window) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as PoolBackend>::kd_max_pool2d(
        x.into_dispatch(),
        window,
    ))
}

/// 2×2 max-pooling with stride 2 (the students'; a last odd row or column is dropped).
pub fn max_pool_2x2(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(
        x,
        Window {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
        },
    )
}

/// Average pooling of `x` (`[batch, channels, h, w]`) with `window` (no padding), on any
/// backend; differentiable.
pub fn avg_pool2d(x: Tensor<4>, window: Window) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as PoolBackend>::kd_avg_pool2d(
        x.into_dispatch(),
        window,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_BY_TWO: Window = Window {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
    };

    #[test]
    fn maxima_of_blocks_drop_a_last_odd_row_and_column() {
        // A 3×5 plane of values 0..15 and one of their negatives.
        let x: Vec<f32> = (0..15).map(|v| v as f32).collect();
        let mut out = vec![0.0; 2];
        max_pool_plane(&x, [3, 5], &mut out, TWO_BY_TWO);
        assert_eq!(out, vec![6.0, 8.0]);
        let negated: Vec<f32> = x.iter().map(|v| -v).collect();
        max_pool_plane(&negated, [3, 5], &mut out, TWO_BY_TWO);
        assert_eq!(out, vec![-0.0, -2.0]);
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
        let mut out = vec![0.0; 4];
        max_pool_plane(&x, [4, 4], &mut out, window);
        assert_eq!(out, vec![100.0, 7.0, 13.0, 15.0]);
    }

    #[test]
    fn averages_of_blocks() {
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut out = vec![0.0; 4];
        avg_pool_plane(&x, [4, 4], &mut out, TWO_BY_TWO);
        assert_eq!(out, vec![2.5, 4.5, 10.5, 12.5]);
    }
}
