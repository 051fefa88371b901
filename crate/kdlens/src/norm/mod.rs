//! Batch normalisation with running statistics followed by ReLU — DenseNet's `norm → relu` pairs,
//! 120 of them in DenseNet-121 — as one burn backend extension: on `flex` one pass over the
//! activation (in place where nobody else holds it) instead of burn's five (subtract, divide,
//! multiply, add, ReLU); on the CubeCL backends burn's operations; inside a graph a backward that
//! gives the input, `gamma` and `beta` their gradients.
//!
//! A batch norm that trains (on an autodiff device, not frozen) uses its batch's statistics and
//! keeps burn's path ([`BatchNorm::forward`]).

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
        tensor::FloatTensor,
    },
    module::RunningState,
    nn::BatchNorm,
    tensor::{DType, Shape, Tensor, activation::relu, module::batch_norm_train},
};

use crate::flex_tensor::{contiguous, dims4, f32s, f32s_in_place, from_f32s, per_channel_sum};
use kdlens_kernels::{norm::scale_shift_relu, simd::active};

/// A backend that runs kdlens' per-channel scale, shift and ReLU; the default is burn's
/// operations.
#[backend_extension(Flex, Cube: cfg(all()), Autodiff)]
pub trait NormBackend: Backend {
    /// `max(0, x · scale[c] + shift[c])` for `x` `[batch, channels, h, w]`, `scale` and `shift`
    /// `[channels]`.
    fn kd_scale_shift_relu(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        composed::<Self>(x, scale, shift)
    }
}

/// The scale, shift and ReLU out of burn's operations.
fn composed<B: Backend>(
    x: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
) -> FloatTensor<B> {
    let scale = per_channel::<B>(scale);
    let shift = per_channel::<B>(shift);
    B::relu(B::float_add(B::float_mul(x, scale), shift))
}

/// `[channels]` → `[1, channels, 1, 1]`, to broadcast over an activation.
fn per_channel<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let channels = t.shape().num_elements();
    B::float_reshape(t, Shape::new([1, channels, 1, 1]))
}

/// burn's operations on the GPU.
impl NormBackend for Cube {}

/// One pass over contiguous `f32` activations; burn's operations for anything else.
impl NormBackend for Flex {
    fn kd_scale_shift_relu(x: FlexTensor, scale: FlexTensor, shift: FlexTensor) -> FlexTensor {
        let dims = dims4(x.shape().as_slice());
        let all_f32 = [&x, &scale, &shift].iter().all(|t| t.dtype() == DType::F32);
        let Some(dims @ [_, channels, h, w]) = dims.filter(|_| all_f32) else {
            return composed::<Flex>(x, scale, shift);
        };
        if scale.shape().num_elements() != channels || shift.shape().num_elements() != channels {
            return composed::<Flex>(x, scale, shift);
        }
        let (scale, shift) = (contiguous(scale), contiguous(shift));
        let affine = |values: &mut [f32]| {
            scale_shift_relu(active(), values, [f32s(&scale), f32s(&shift)], h * w)
        };
        let mut x = contiguous(x);
        if let Some(values) = f32s_in_place(&mut x) {
            affine(values);
            return x;
        }
        let mut out = f32s(&x).to_vec();
        affine(&mut out);
        from_f32s(out, dims)
    }
}

/// The backward pass: `∂x = g' · scale`, `∂scale = Σ g' · x`, `∂shift = Σ g'`, where `g'` is the
/// output gradient where the output is positive and 0 elsewhere.
impl<B: NormBackend, C: CheckpointStrategy> NormBackend for Autodiff<B, C> {
    fn kd_scale_shift_relu(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (scale, scale_node) = scale.into_parts();
        let (shift, shift_node) = shift.into_parts();
        match ScaleShiftReluBackward
            .prepare::<C>([x_node, scale_node, shift_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::kd_scale_shift_relu(x.clone(), scale.clone(), shift);
                prep.finish((x, scale, output.clone()), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kd_scale_shift_relu(x, scale, shift)),
        }
    }
}

#[derive(Debug)]
struct ScaleShiftReluBackward;

impl<B: Backend> Backward<B, 3> for ScaleShiftReluBackward {
    /// The input, the scale and the output of the forward pass.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (x, scale, output) = ops.state;
        let passed = B::relu_backward(output, grads.consume::<B>(&ops.node));
        let [x_node, scale_node, shift_node] = ops.parents;
        if let Some(node) = shift_node {
            grads.register::<B>(node.id, per_channel_sum::<B>(passed.clone()));
        }
        if let Some(node) = scale_node {
            let grad = per_channel_sum::<B>(B::float_mul(passed.clone(), x));
            grads.register::<B>(node.id, grad);
        }
        if let Some(node) = x_node {
            grads.register::<B>(node.id, B::float_mul(passed, per_channel::<B>(scale)));
        }
    }
}

/// `relu(norm(x))` for `x` `[batch, channels, h, w]`: with `norm`'s running statistics in one
/// step ([`NormBackend`]), or burn's batch norm with the batch's statistics where `norm` trains.
/// Differentiable in `x` and in `norm`'s `gamma` and `beta`.
pub fn batch_norm_relu(norm: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if device.is_autodiff() && norm.training.is_enabled() {
        return relu(forward_train(norm, x));
    }
    let mean = norm.running_mean.value().to_device(&device);
    let variance = norm.running_var.value().to_device(&device);
    let scale = norm.gamma.val() / (variance + norm.epsilon).sqrt();
    let shift = norm.beta.val() - mean * scale.clone();
    Tensor::from_dispatch(<Dispatch as NormBackend>::kd_scale_shift_relu(
        x.into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
    ))
}

/// Batch norm with the batch's statistics, as [`BatchNorm::forward`] trains, except that the
/// running variance follows PyTorch: the batch's *unbiased* variance (× n / (n − 1), with
/// n = batch · height · width values per channel) is blended in with `momentum`, where burn blends
/// the biased one. The output is normalised with the biased variance, as in both.
fn forward_train(norm: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let [batch, _, height, width] = x.dims();
    let values = (batch * height * width) as f64;
    let bessel = if values > 1.0 {
        values / (values - 1.0)
    } else {
        1.0
    };
    let result = batch_norm_train(x, norm.gamma.val(), norm.beta.val(), norm.epsilon);
    blend(&norm.running_mean, result.mean, norm.momentum);
    blend(
        &norm.running_var,
        result.variance.mul_scalar(bessel),
        norm.momentum,
    );
    result.output
}

/// `running ← (1 − momentum) · running + momentum · batch`, on the batch's device.
fn blend(running: &RunningState<Tensor<1>>, batch: Tensor<1>, momentum: f64) {
    let previous = running.value_sync().to_device(&batch.device());
    let next = previous.mul_scalar(1.0 - momentum) + batch.detach().mul_scalar(momentum);
    running.update(next.detach());
}

#[cfg(test)]
mod tests {
    use super::*;

    use burn::{
        nn::BatchNormConfig,
        tensor::{Device, TensorData},
    };

    fn f32s_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32 tensor")
    }

    #[test]
    fn training_keeps_pytorchs_unbiased_running_variance() {
        let device = Device::flex().autodiff();
        let norm = BatchNormConfig::new(1).init(&device);
        // One channel, two images of 1×2: values 1, 2, 3, 6 — mean 3, biased variance
        // 14 / 4 = 3.5, unbiased 14 / 3.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 6.0], [2, 1, 1, 2]),
            &device,
        );
        let out = f32s_of(batch_norm_relu(&norm, x));
        let std = (3.5f32 + 1e-5).sqrt();
        let want = [0.0, 0.0, 0.0, 3.0 / std];
        for (got, want) in out.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "output {out:?}, want {want}");
        }
        // running ← 0.9 · running + 0.1 · batch, from mean 0 and variance 1.
        let mean = f32s_of(norm.running_mean.value_sync())[0];
        let var = f32s_of(norm.running_var.value_sync())[0];
        assert!((mean - 0.3).abs() < 1e-6, "running mean {mean}");
        assert!(
            (var - (0.9 + 0.1 * 14.0 / 3.0)).abs() < 1e-6,
            "running variance {var}"
        );
        // A second batch blends into the first's state: values 0, 0, 2, 2 — mean 1, unbiased 4 / 3.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 2.0, 2.0], [2, 1, 1, 2]),
            &device,
        );
        let _ = batch_norm_relu(&norm, x);
        let mean = f32s_of(norm.running_mean.value_sync())[0];
        let var = f32s_of(norm.running_var.value_sync())[0];
        let want_var = 0.9 * (0.9 + 0.1 * 14.0 / 3.0) + 0.1 * 4.0 / 3.0;
        assert!(
            (mean - (0.9 * 0.3 + 0.1)).abs() < 1e-6,
            "running mean {mean}"
        );
        assert!((var - want_var).abs() < 1e-6, "running variance {var}");
    }
}
