//! The convolution as a burn backend extension: `Flex` runs kdlens' kernels ([`super::cpu`]),
//! the CubeCL backends (wgpu, WebGPU) keep burn's own convolution, and `Autodiff` records
//! kdlens' backward pass on any of them.

use burn::{
    backend::{
        Autodiff, Backend, Cube, ExtensionType, Flex, TensorMetadata,
        autodiff::{
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, NodeGuard, Ops, OpsKind},
        },
        backend_extension,
        flex::FlexTensor,
        ops::ModuleOps,
        tensor::FloatTensor,
    },
    tensor::{DType, ops::ConvOptions},
};

use super::{
    cpu::{self, Geometry},
    packed_cache::packed_weights,
};
use crate::flex_tensor::{contiguous, dims4, f32s, from_f32s, per_channel_sum};
use kdlens_kernels::simd::active;

/// The optional bias of a convolution, `[c_out]` (an enum because backend extensions route
/// tensors inside derived types, not inside `Option`).
#[derive(ExtensionType)]
pub enum Bias<B: Backend> {
    /// Added to every output position of its channel.
    Add(FloatTensor<B>),
    /// No bias.
    None,
}

impl<B: Backend> Bias<B> {
    /// The bias tensor, if any.
    pub fn into_option(self) -> Option<FloatTensor<B>> {
        match self {
            Bias::Add(b) => Some(b),
            Bias::None => None,
        }
    }
}

impl<B: Backend> From<Option<FloatTensor<B>>> for Bias<B> {
    fn from(bias: Option<FloatTensor<B>>) -> Self {
        bias.map_or(Bias::None, Bias::Add)
    }
}

/// What follows the convolution in the same step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// The convolution's output as it is.
    Identity,
    /// `max(0, ·)` of the output.
    Relu,
}

/// A backend that runs kdlens' convolution. Every method defaults to burn's own convolution, so
/// a backend implements only what it does better.
#[backend_extension(Flex, Cube: cfg(all()), Autodiff)]
pub trait ConvBackend: Backend {
    /// `activation(x ⊛ weight + bias)` for `x` `[batch, c_in, h, w]`, `weight`
    /// `[c_out, c_in / groups, kh, kw]` and `bias` `[c_out]`.
    fn kd_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        #[extension_type] bias: Bias<Self>,
        options: ConvOptions<2>,
        activation: Activation,
    ) -> FloatTensor<Self> {
        activate::<Self>(
            Self::conv2d(x, weight, bias.into_option(), options),
            activation,
        )
    }

    /// The gradient of [`kd_conv2d`](Self::kd_conv2d) with respect to `x`, shaped like `x`.
    fn kd_conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, output_grad, options)
    }

    /// The gradient of [`kd_conv2d`](Self::kd_conv2d) with respect to `weight`, shaped like it.
    fn kd_conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }
}

/// `activation` of `y` with burn's operations.
fn activate<B: Backend>(y: FloatTensor<B>, activation: Activation) -> FloatTensor<B> {
    match activation {
        Activation::Identity => y,
        Activation::Relu => B::relu(y),
    }
}

/// burn's kernels on the GPU.
impl ConvBackend for Cube {}

/// kdlens' kernels for `f32` convolutions with one group; burn's for the rest.
impl ConvBackend for Flex {
    fn kd_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: Bias<Self>,
        options: ConvOptions<2>,
        activation: Activation,
    ) -> FlexTensor {
        let bias = bias.into_option();
        let Some(g) = geometry(&x, &weight, bias.as_ref(), &options) else {
            return activate::<Flex>(Flex::conv2d(x, weight, bias, options), activation);
        };
        let bias = bias.map(contiguous);
        let (x, weight) = (contiguous(x), contiguous(weight));
        let epilogue = cpu::Epilogue {
            bias: bias.as_ref().map(f32s),
            relu: activation == Activation::Relu,
        };
        let out = match packed_weights(&weight, f32s(&weight), &g) {
            Some(packed) => cpu::forward_packed(active(), f32s(&x), &packed, epilogue, &g),
            None => cpu::forward(active(), f32s(&x), f32s(&weight), epilogue, &g),
        };
        let [oh, ow] = g.out_size();
        from_f32s(out, [g.batch, g.c_out, oh, ow])
    }

    fn kd_conv2d_input_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        // Strided layers (DenseNet's stem) have no stride-1 transposed convolution: burn's path.
        let g = geometry(&x, &weight, Some(&output_grad), &options)
            .filter(|g| g.transposed().is_some());
        let Some(g) = g else {
            return Flex::conv2d_x_backward(x, weight, output_grad, options);
        };
        let (weight, output_grad) = (contiguous(weight), contiguous(output_grad));
        let grad = cpu::input_grad(active(), f32s(&weight), f32s(&output_grad), &g)
            .expect("conv: the transposed geometry exists (checked above)");
        from_f32s(grad, [g.batch, g.c_in, g.in_size[0], g.in_size[1]])
    }

    fn kd_conv2d_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let Some(g) = geometry(&x, &weight, Some(&output_grad), &options) else {
            return Flex::conv2d_weight_backward(x, weight, output_grad, options);
        };
        let (x, output_grad) = (contiguous(x), contiguous(output_grad));
        let grad = cpu::weight_grad(active(), f32s(&x), f32s(&output_grad), &g);
        from_f32s(grad, [g.c_out, g.c_in, g.kernel[0], g.kernel[1]])
    }
}

/// The geometry of a convolution kdlens' CPU kernels compute: `f32` input, weights and `other`
/// tensor (bias or output gradient), one group.
fn geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    other: Option<&FlexTensor>,
    options: &ConvOptions<2>,
) -> Option<Geometry> {
    let mut tensors = [Some(x), Some(weight), other].into_iter().flatten();
    if tensors.any(|t| t.dtype() != DType::F32) || options.groups != 1 {
        return None;
    }
    let (xs, ws) = (x.shape(), weight.shape());
    let ([batch, c_in, h, w], [c_out, w_in, kh, kw]) =
        (dims4(xs.as_slice())?, dims4(ws.as_slice())?);
    let g = Geometry {
        batch,
        c_in,
        c_out,
        in_size: [h, w],
        kernel: [kh, kw],
        stride: options.stride,
        pad_begin: options.padding_begin(),
        pad_end: options.padding_end(),
        dilation: options.dilation,
    };
    (w_in == c_in && g.is_valid()).then_some(g)
}

/// kdlens' backward pass: input and weight gradients from the inner backend's
/// [`ConvBackend`] methods, bias gradient as the sum of the output gradient over batch and space.
impl<B: ConvBackend, C: CheckpointStrategy> ConvBackend for Autodiff<B, C> {
    fn kd_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Bias<Self>,
        options: ConvOptions<2>,
        activation: Activation,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let conv = Forward {
            x,
            weight,
            options,
            activation,
        };
        match bias {
            Bias::Add(bias) => {
                let (bias, bias_node) = bias.into_parts();
                record::<B, C, 3>([x_node, weight_node, bias_node], conv, Bias::Add(bias))
            }
            Bias::None => record::<B, C, 2>([x_node, weight_node], conv, Bias::None),
        }
    }
}

/// The backward step of one convolution; parents are `[x, weight]` or `[x, weight, bias]`.
#[derive(Debug)]
struct ConvBackward;

/// A convolution's inputs other than the bias, what [`ConvBackward`] keeps of it, and its
/// output where the backward needs it (to let the gradient through where ReLU did).
#[derive(Debug, Clone)]
struct Forward<T> {
    x: T,
    weight: T,
    options: ConvOptions<2>,
    activation: Activation,
}

impl<B: ConvBackend, const N: usize> Backward<B, N> for ConvBackward {
    /// The forward pass, and its output after ReLU if it had one.
    type State = (Forward<FloatTensor<B>>, Option<FloatTensor<B>>);

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (
            Forward {
                x, weight, options, ..
            },
            rectified,
        ) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let grad = match rectified {
            Some(output) => B::relu_backward(output, grad),
            None => grad,
        };
        if let Some(node) = ops.parents.get(2).cloned().flatten() {
            grads.register::<B>(node.id, per_channel_sum::<B>(grad.clone()));
        }
        if let Some(node) = ops.parents[1].clone() {
            let grad_w =
                B::kd_conv2d_weight_grad(x.clone(), weight.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, grad_w);
        }
        if let Some(node) = ops.parents[0].clone() {
            grads.register::<B>(node.id, B::kd_conv2d_input_grad(x, weight, grad, options));
        }
    }
}

fn record<B: ConvBackend, C: CheckpointStrategy, const N: usize>(
    parents: [NodeGuard; N],
    conv: Forward<FloatTensor<B>>,
    bias: Bias<B>,
) -> FloatTensor<Autodiff<B, C>> {
    let run = |conv: &Forward<FloatTensor<B>>, bias| {
        let (x, weight) = (conv.x.clone(), conv.weight.clone());
        B::kd_conv2d(x, weight, bias, conv.options.clone(), conv.activation)
    };
    match ConvBackward
        .prepare::<C>(parents)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let output = run(&conv, bias);
            let rectified = (conv.activation == Activation::Relu).then(|| output.clone());
            prep.finish((conv, rectified), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(run(&conv, bias)),
    }
}
