//! kdlens' 2-D convolution: the one op every model calls. Its backend decides the kernel — on
//! the CPU (`flex`) kdlens' own ([`cpu`]), on a GPU burn's — and its backward pass is kdlens'
//! own on every backend.

mod backend;
pub use kdlens_kernels::conv as cpu;
mod packed_cache;

use burn::{
    backend::Dispatch,
    nn::{PaddingConfig2d, conv::Conv2d},
    tensor::{Tensor, ops::ConvOptions},
};

pub use backend::{Activation, Bias, ConvBackend};

/// `x` (`[batch, c_in, h, w]`) convolved with `weight` (`[c_out, c_in / groups, kh, kw]`) plus
/// `bias` (`[c_out]`): `[batch, c_out, out_h, out_w]`. The same numbers as burn's
/// `module::conv2d`, differentiable in all three inputs.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    conv2d_activated(x, weight, bias, options, Activation::Identity)
}

/// [`conv2d`] followed by `activation` in the same step (on the CPU applied as each output is
/// written); differentiable in all three inputs.
pub fn conv2d_activated(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    activation: Activation,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ConvBackend>::kd_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        Bias::from(bias.map(Tensor::into_dispatch)),
        options,
        activation,
    ))
}

/// `layer` applied to `x` through [`conv2d`]: what `Conv2d::forward` computes.
pub fn forward(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    forward_activated(layer, x, Activation::Identity)
}

/// `relu(layer(x))` in one step (on the CPU the ReLU is applied as each output is written).
pub fn forward_relu(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    forward_activated(layer, x, Activation::Relu)
}

fn forward_activated(layer: &Conv2d, x: Tensor<4>, activation: Activation) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let [(top, bottom), (left, right)] = padding_pairs(layer, [h, w]);
    let options = ConvOptions::new_with_padding(
        layer.stride,
        [(top, bottom), (left, right)],
        layer.dilation,
        layer.groups,
    );
    conv2d_activated(
        x,
        layer.weight.val(),
        layer.bias.as_ref().map(|b| b.val()),
        options,
        activation,
    )
}

/// `[(top, bottom), (left, right)]` zero padding of `layer` for an input of `size`, as burn's
/// `Conv2d::forward` computes it (its helper is private to burn-nn).
fn padding_pairs(layer: &Conv2d, size: [usize; 2]) -> [(usize, usize); 2] {
    match layer.padding {
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Same => std::array::from_fn(|d| {
            // As many outputs as ⌈size / stride⌉, the padding split with the odd pixel at the end.
            let out = size[d].div_ceil(layer.stride[d]);
            let needed = out.saturating_sub(1) * layer.stride[d] + layer.kernel_size[d];
            let total = needed.saturating_sub(size[d]);
            (total / 2, total - total / 2)
        }),
    }
}
