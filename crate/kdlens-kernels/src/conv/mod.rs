//! Convolution on contiguous `f32` tensors in `[batch, channels, height, width]` layout, on the
//! vector unit a [`Path`] names: forward (shifted products over the padded input for stride-1 layers with few
//! output channels, Winograd F(2×2, 3×3) for other 3×3 stride-1 layers, a matrix product over an
//! im2col layout otherwise), input gradient (the forward kernel run on the output gradient
//! with flipped, transposed weights) and weight gradient (one matrix product per image).

mod im2col;
mod microkernel;
mod scratch;
mod shifted;
mod winograd;

use crate::simd::Path;

/// The shape of one 2-D convolution with one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Input `[height, width]`.
    pub in_size: [usize; 2],
    /// Kernel `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride `[vertical, horizontal]`.
    pub stride: [usize; 2],
    /// Zero padding before the first row and column.
    pub pad_begin: [usize; 2],
    /// Zero padding after the last row and column.
    pub pad_end: [usize; 2],
    /// Dilation `[vertical, horizontal]`.
    pub dilation: [usize; 2],
}

impl Geometry {
    /// Output `[height, width]`.
    pub fn out_size(&self) -> [usize; 2] {
        std::array::from_fn(|d| {
            let extent = self.dilation[d] * (self.kernel[d] - 1) + 1;
            (self.in_size[d] + self.pad_begin[d] + self.pad_end[d]).saturating_sub(extent)
                / self.stride[d]
                + 1
        })
    }

    /// Elements of the input tensor.
    pub fn input_len(&self) -> usize {
        self.batch * self.c_in * self.in_size[0] * self.in_size[1]
    }

    /// Elements of the output tensor.
    pub fn output_len(&self) -> usize {
        self.batch * self.c_out * self.out_positions()
    }

    /// Elements of the weight tensor `[c_out, c_in, kh, kw]`.
    pub fn weight_len(&self) -> usize {
        self.c_out * self.patch_len()
    }

    /// Whether the padded input holds at least one kernel window.
    pub fn is_valid(&self) -> bool {
        (0..2).all(|d| {
            self.kernel[d] > 0
                && self.stride[d] > 0
                && self.dilation[d] > 0
                && self.in_size[d] + self.pad_begin[d] + self.pad_end[d]
                    > self.dilation[d] * (self.kernel[d] - 1)
        })
    }

    pub(crate) fn out_positions(&self) -> usize {
        let [oh, ow] = self.out_size();
        oh * ow
    }

    pub(crate) fn patch_len(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    pub(crate) fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.pad_begin == [0, 0]
            && self.pad_end == [0, 0]
    }

    /// The convolution that computes this one's input gradient from its output gradient, when it
    /// is a stride-1 convolution: kernels flipped, input and output channels swapped, padding
    /// `dilation·(k − 1) − pad` on each side. `None` for strided layers and padding wider than the
    /// kernel.
    pub fn transposed(&self) -> Option<Geometry> {
        if self.stride != [1, 1] {
            return None;
        }
        let extent: [usize; 2] = std::array::from_fn(|d| self.dilation[d] * (self.kernel[d] - 1));
        let pad = |p: [usize; 2]| -> Option<[usize; 2]> {
            Some([extent[0].checked_sub(p[0])?, extent[1].checked_sub(p[1])?])
        };
        Some(Geometry {
            batch: self.batch,
            c_in: self.c_out,
            c_out: self.c_in,
            in_size: self.out_size(),
            kernel: self.kernel,
            stride: [1, 1],
            pad_begin: pad(self.pad_begin)?,
            pad_end: pad(self.pad_end)?,
            dilation: self.dilation,
        })
    }
}

/// What the output step applies to each convolution output, in this order, while the values
/// are in cache: a per-channel bias (`[c_out]`), then ReLU.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Added to every output of its channel.
    pub bias: Option<&'a [f32]>,
    /// Whether negative outputs become 0.
    pub relu: bool,
}

impl Epilogue<'_> {
    /// The bias of channel `c` (0 without one).
    #[inline(always)]
    fn bias_of(&self, c: usize) -> f32 {
        self.bias.map_or(0.0, |b| b[c])
    }

    /// `v` (channel `c`) finished.
    #[inline(always)]
    fn finish(&self, c: usize, v: f32) -> f32 {
        self.finish_biased(v + self.bias_of(c))
    }

    /// `v`, whose bias is already added, finished.
    #[inline(always)]
    fn finish_biased(&self, v: f32) -> f32 {
        if self.relu {
            crate::maximum::relu(v)
        } else {
            v
        }
    }

    /// Whether finishing leaves every value unchanged.
    fn is_identity(&self) -> bool {
        self.bias.is_none() && !self.relu
    }
}

/// The convolution of `x` (`[batch, c_in, h, w]`) with `w` (`[c_out, c_in, kh, kw]`), finished by
/// `epilogue` (bias, ReLU): `[batch, c_out, out_h, out_w]`, on the vector unit `path` (one the CPU
/// has: [`crate::simd::active`], or one of [`crate::simd::available`]).
///
/// # Panics
/// If a slice's length does not match `g`.
pub fn forward(path: Path, x: &[f32], w: &[f32], epilogue: Epilogue<'_>, g: &Geometry) -> Vec<f32> {
    assert!(g.is_valid(), "conv: kernel larger than the padded input");
    assert_eq!(x.len(), g.input_len(), "conv: input length");
    assert_eq!(w.len(), g.weight_len(), "conv: weight length");
    if let Some(bias) = epilogue.bias {
        assert_eq!(bias.len(), g.c_out, "conv: bias length");
    }
    match PackedWeights::new(w, g) {
        Some(packed) => forward_packed(path, x, &packed, epilogue, g),
        None => {
            let mut out = vec![0.0; g.output_len()];
            im2col::forward(path, x, w, epilogue, g, &mut out);
            out
        }
    }
}

/// The kernel that computes a forward pass of geometry `g`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// Shifted products over the padded input ([`shifted`]): stride-1 layers with few output
    /// channels.
    Shifted,
    /// Winograd F(2×2, 3×3) ([`winograd`]): 3×3 stride-1 layers.
    Winograd,
    /// One product over an im2col layout ([`im2col`]): everything else.
    Im2col,
}

impl Kernel {
    fn for_geometry(g: &Geometry) -> Self {
        if shifted::applies(g) {
            Self::Shifted
        } else if winograd::applies(g) {
            Self::Winograd
        } else {
            Self::Im2col
        }
    }
}

/// Weights laid out once for a layer's kernel (for layers that are run many times with the same
/// weights): Winograd-transformed, or regrouped by kernel tap.
#[derive(Debug)]
pub struct PackedWeights {
    kernel: Kernel,
    /// `[c_out, c_in, kh, kw]` of the weights.
    geometry_key: [usize; 4],
    values: Vec<f32>,
}

impl PackedWeights {
    /// The packed weights of a layer of geometry `g`; `None` when its forward pass does not use
    /// them (then [`forward`] is as fast).
    pub fn new(w: &[f32], g: &Geometry) -> Option<Self> {
        assert_eq!(w.len(), g.weight_len(), "conv: weight length");
        let kernel = Kernel::for_geometry(g);
        let values = match kernel {
            Kernel::Shifted => shifted::group_by_tap(w, g),
            Kernel::Winograd => winograd::transform_weights(w, g.c_out, g.c_in),
            Kernel::Im2col => return None,
        };
        Some(Self {
            kernel,
            geometry_key: [g.c_out, g.c_in, g.kernel[0], g.kernel[1]],
            values,
        })
    }
}

/// [`forward`] with weights packed by [`PackedWeights::new`] for the same `g`.
pub fn forward_packed(
    path: Path,
    x: &[f32],
    packed: &PackedWeights,
    epilogue: Epilogue<'_>,
    g: &Geometry,
) -> Vec<f32> {
    assert_eq!(
        packed.kernel,
        Kernel::for_geometry(g),
        "conv: weights packed for another kernel"
    );
    assert_eq!(
        packed.geometry_key,
        [g.c_out, g.c_in, g.kernel[0], g.kernel[1]],
        "conv: packed for other weights"
    );
    assert_eq!(x.len(), g.input_len(), "conv: input length");
    let mut out = vec![0.0; g.output_len()];
    if let Some(bias) = epilogue.bias {
        assert_eq!(bias.len(), g.c_out, "conv: bias length");
    }
    match packed.kernel {
        Kernel::Shifted => shifted::forward(path, x, &packed.values, epilogue, g, &mut out),
        Kernel::Winograd => winograd::forward(path, x, &packed.values, epilogue, g, &mut out),
        Kernel::Im2col => unreachable!("im2col weights are never packed"),
    }
    out
}

/// The gradient with respect to the input, `[batch, c_in, h, w]`, of the convolution `g` with
/// weights `w`, given the gradient of its output, on the vector unit `path`; `None` where
/// `g.transposed()` is.
pub fn input_grad(path: Path, w: &[f32], grad_out: &[f32], g: &Geometry) -> Option<Vec<f32>> {
    let t = g.transposed()?;
    assert_eq!(
        grad_out.len(),
        g.output_len(),
        "conv: output gradient length"
    );
    let flipped = flip_transpose(w, g);
    Some(forward(path, grad_out, &flipped, Epilogue::default(), &t))
}

/// The gradient with respect to the weights, `[c_out, c_in, kh, kw]`, of the convolution `g` on
/// input `x`, given the gradient of its output, on the vector unit `path`.
pub fn weight_grad(path: Path, x: &[f32], grad_out: &[f32], g: &Geometry) -> Vec<f32> {
    assert!(g.is_valid(), "conv: kernel larger than the padded input");
    assert_eq!(x.len(), g.input_len(), "conv: input length");
    assert_eq!(
        grad_out.len(),
        g.output_len(),
        "conv: output gradient length"
    );
    im2col::weight_grad(path, x, grad_out, g)
}

/// `w[co, ci, ky, kx]` → `w'[ci, co, kh−1−ky, kw−1−kx]`.
fn flip_transpose(w: &[f32], g: &Geometry) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let mut out = vec![0.0; w.len()];
    for co in 0..g.c_out {
        for ci in 0..g.c_in {
            let src = &w[(co * g.c_in + ci) * kh * kw..][..kh * kw];
            let dst = &mut out[(ci * g.c_out + co) * kh * kw..][..kh * kw];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
