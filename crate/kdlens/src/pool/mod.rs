//! 2×2 max-pooling with stride 2, the students' pooling, as a burn backend extension: `flex`
//! runs kdlens' loop (burn's CPU pooling kernel is scalar and cost a third of the student's
//! forward pass), the CubeCL backends and `Autodiff` keep burn's `max_pool2d` (and its backward).

use crate::conv::cpu::for_each_chunk;

use burn::{
    backend::{
        Autodiff, Backend, Cube, Dispatch, Flex, TensorMetadata,
        autodiff::checkpoint::strategy::CheckpointStrategy, backend_extension, flex::FlexTensor,
        ops::ModuleOps, tensor::FloatTensor,
    },
    tensor::{DType, Shape, Tensor, TensorData},
};

/// A backend that runs kdlens' 2×2 max-pooling; the default is burn's.
#[backend_extension(Flex, Cube: cfg(all()), Autodiff)]
pub trait PoolBackend: Backend {
    /// `[batch, channels, h, w]` → `[batch, channels, ⌊h / 2⌋, ⌊w / 2⌋]`, the maximum of each
    /// 2×2 block (a last odd row or column is dropped, as PyTorch's `max_pool2d(x, 2)`).
    fn kd_max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false)
    }
}

/// burn's kernel on the GPU.
impl PoolBackend for Cube {}

/// burn's pooling and its backward inside a graph.
impl<B: PoolBackend, C: CheckpointStrategy> PoolBackend for Autodiff<B, C> {}

/// kdlens' loop for contiguous `f32`; burn's for the rest.
impl PoolBackend for Flex {
    fn kd_max_pool_2x2(x: FlexTensor) -> FlexTensor {
        let dims: Option<[usize; 4]> = x.shape().as_slice().try_into().ok();
        let values = x.as_slice::<f32>();
        match (dims, values) {
            (Some([batch, channels, h, w]), Some(values)) if x.dtype() == DType::F32 => {
                let out = pool_planes(values, [batch * channels, h, w]);
                FlexTensor::from_data(TensorData::new(
                    out,
                    Shape::new([batch, channels, h / 2, w / 2]),
                ))
            }
            _ => Flex::max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false),
        }
    }
}

/// 2×2 max-pooling of `x` (`[batch, channels, h, w]`), stride 2, on any backend; differentiable.
pub fn max_pool_2x2(x: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as PoolBackend>::kd_max_pool_2x2(
        x.into_dispatch(),
    ))
}

/// The pooling of `planes` planes of `h × w` values: `planes × ⌊h/2⌋ × ⌊w/2⌋` maxima, planes in
/// parallel.
fn pool_planes(x: &[f32], [planes, h, w]: [usize; 3]) -> Vec<f32> {
    let (h2, w2) = (h / 2, w / 2);
    let mut out = vec![0.0; planes * h2 * w2];
    if out.is_empty() {
        return out;
    }
    for_each_chunk(&mut out, h2 * w2, |p, out| {
        let plane = &x[p * h * w..(p + 1) * h * w];
        for (i, row) in out.chunks_exact_mut(w2).enumerate() {
            let (top, bottom) = (&plane[2 * i * w..][..w], &plane[(2 * i + 1) * w..][..w]);
            for (j, v) in row.iter_mut().enumerate() {
                *v = top[2 * j]
                    .max(top[2 * j + 1])
                    .max(bottom[2 * j].max(bottom[2 * j + 1]));
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxima_of_blocks_drop_a_last_odd_row_and_column() {
        // Two 3×5 planes: values 0..15 and their negatives.
        let x: Vec<f32> = (0..15)
            .map(|v| v as f32)
            .chain((0..15).map(|v| -(v as f32)))
            .collect();
        let out = pool_planes(&x, [2, 3, 5]);
        assert_eq!(out, vec![6.0, 8.0, -0.0, -2.0]);
        assert!(pool_planes(&x[..5], [1, 1, 5]).is_empty());
    }
}
