//! The models' pooling layers — the students' 2×2 max-pool, DenseNet's 3×3 stride-2 stem max-pool
//! and 2×2 average pools — as one burn backend extension: on `flex` kdlens' loops (burn's CPU
//! pooling kernels are scalar: the stem's max-pool alone took 5 ms, 8 % of DenseNet-121's forward
//! pass), on the CubeCL backends burn's kernels, inside a graph burn's backward passes (a tracked
//! max-pool also takes burn's forward, which records the positions of the maxima).

use crate::flex_tensor::{contiguous, dims4, f32s, from_f32s};
use kdlens_kernels::{
    pool::{Pooling, pool},
    simd::active,
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

pub use kdlens_kernels::pool::Window;

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
            Some(dims) => pool_each_plane(x, dims, window, Pooling::Max),
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
            Some(dims) => pool_each_plane(x, dims, window, Pooling::Average),
            None => Flex::avg_pool2d(x, window.kernel, window.stride, window.padding, true, false),
        }
    }
}

/// The dimensions of `x` where kdlens' loops pool it with `window`.
fn pool_geometry(x: &FlexTensor, window: Window) -> Option<[usize; 4]> {
    let dims = dims4(x.shape().as_slice())?;
    (x.dtype() == DType::F32 && window.fits([dims[2], dims[3]])).then_some(dims)
}

/// `pooling` with `window` of every plane of `x` with kdlens' loops.
fn pool_each_plane(
    x: FlexTensor,
    [batch, channels, h, w]: [usize; 4],
    window: Window,
    pooling: Pooling,
) -> FlexTensor {
    let x = contiguous(x);
    let out = pool(
        active(),
        f32s(&x),
        [batch * channels, h, w],
        window,
        pooling,
    );
    let [oh, ow] = window.out_size([h, w]);
    from_f32s(out, [batch, channels, oh, ow])
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
