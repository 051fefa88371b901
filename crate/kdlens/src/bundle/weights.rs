//! Weights in burnpack form, and their storage precision.

use burn::{
    module::Module,
    store::{DTypePolicy, ModuleRecord},
    tensor::{Bytes, DType},
};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, model::Classifier};

/// Precision of the stored weights. Loading always yields f32 weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WeightPrecision {
    /// 32-bit floats, exact.
    #[default]
    F32,
    /// IEEE half precision: half the size, ≈3 significant digits per weight.
    F16,
}

/// The model's parameters as burnpack bytes at `precision`.
pub(crate) fn encode(model: &Classifier, precision: WeightPrecision) -> Result<Vec<u8>> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Weights(e.to_string()))?;
    match precision {
        WeightPrecision::F32 => Ok(bytes.to_vec()),
        WeightPrecision::F16 => to_f16(bytes),
    }
}

/// Rewrites every f32 tensor of a burnpack buffer as f16.
fn to_f16(bytes: Bytes) -> Result<Vec<u8>> {
    let err = |e: burn_pack::Error| Error::Weights(e.to_string());
    let tensors = burn_pack::Reader::from_bytes(bytes)
        .and_then(|r| r.into_tensors())
        .map_err(err)?;
    let converted = tensors
        .into_iter()
        .map(|tensor| {
            let (name, dtype, shape, id, data) = tensor.into_parts()?;
            if dtype != DType::F32 {
                return Ok(burn_pack::Tensor::new(name, dtype, shape, id, data));
            }
            let halves: Vec<u8> = data
                .chunks_exact(4)
                .flat_map(|b| {
                    half::f16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes()
                })
                .collect();
            Ok(burn_pack::Tensor::new(
                name,
                DType::F16,
                shape,
                id,
                Bytes::from_bytes_vec(halves),
            ))
        })
        .collect::<Result<Vec<_>, burn_pack::Error>>()
        .map_err(err)?;
    Ok(burn_pack::Writer::new(converted)
        .into_bytes()
        .map_err(err)?
        .to_vec())
}

/// Loads burnpack `bytes` into `model`, casting stored values to the model's f32 and checking
/// that every parameter is present with its exact shape and that nothing is left over.
pub(crate) fn decode(model: Classifier, bytes: &[u8]) -> Result<Classifier> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| Error::Weights(e.to_string()))?
        .with_dtype_policy(DTypePolicy::CastToModule);
    model
        .try_load_record(record)
        .map_err(|e| Error::Weights(e.to_string()))
}
