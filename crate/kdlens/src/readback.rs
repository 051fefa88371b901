//! Reading tensors back from the device, the same way natively and in the browser.

use burn::tensor::Tensor;

use crate::{Error, Result};

/// Reads a float tensor back to the host as a flat row-major `Vec<f32>`.
///
/// Asynchronous because WebGPU in the browser cannot read synchronously; natively, wrap the call
/// in [`block_on`].
pub async fn read_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| Error::Readback(format!("{e:?}")))?;
    data.try_into_vec_as::<f32>()
        .map_err(|e| Error::Readback(format!("{e:?}")))
}

/// Runs a future to completion on the current thread (native callers of the async API).
///
/// The futures of this crate never wait on anything but device read-backs, which complete on
/// their own, so a simple polling executor is enough.
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}
