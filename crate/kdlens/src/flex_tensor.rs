//! Plain `f32` access to burn `flex` tensors, shared by kdlens' backend extensions ([`crate::conv`],
//! [`crate::pool`], [`crate::norm`]), and the per-channel reduction their backward passes share.

use burn::{
    backend::{Backend, TensorMetadata, flex::FlexTensor, tensor::FloatTensor},
    tensor::{DType, Shape, TensorData},
};

/// `[a, b, c, d]` of a rank-4 shape, `None` for another rank.
pub(crate) fn dims4(dims: &[usize]) -> Option<[usize; 4]> {
    dims.try_into().ok()
}

/// `t` with its elements in one contiguous run (a copy only where they are not).
pub(crate) fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The elements of a contiguous `f32` tensor (made so by [`contiguous`]).
///
/// # Panics
/// If `t` is not a contiguous `f32` tensor: callers check the dtype and call [`contiguous`].
pub(crate) fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("flex tensor made contiguous f32 before use")
}

/// The elements of `t` to overwrite in place: `Some` only where `t` is contiguous `f32` from
/// the start of a storage nobody else holds, so that writing changes no other tensor.
pub(crate) fn f32s_in_place(t: &mut FlexTensor) -> Option<&mut [f32]> {
    let n = t.shape().num_elements();
    let whole = t.dtype() == DType::F32 && t.layout().contiguous_offsets() == Some((0, n));
    if !whole {
        return None;
    }
    t.try_storage_mut::<f32>()
        .filter(|values| values.len() == n)
}

/// A `flex` tensor of shape `dims` holding `values` (row-major).
pub(crate) fn from_f32s<const D: usize>(values: Vec<f32>, dims: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, Shape::new(dims)))
}

/// `Σ` over batch, height and width of `[batch, channels, h, w]`: `[channels]` (a bias's or a
/// per-channel shift's gradient).
pub(crate) fn per_channel_sum<B: Backend>(t: FloatTensor<B>) -> FloatTensor<B> {
    let channels = t.shape().as_slice()[1];
    let summed = B::float_sum_dim(B::float_sum_dim(B::float_sum_dim(t, 3), 2), 0);
    B::float_reshape(summed, Shape::new([channels]))
}
