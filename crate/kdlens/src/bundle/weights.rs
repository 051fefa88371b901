//! Weights in burnpack form, and their storage precision.
//!
//! Loading always yields f32 parameters. Reduced precisions are stored as burnpack tensors of
//! another dtype: f16 as such; int8 as an `i8` tensor plus a tensor of per-row scales named
//! `<path>.__scale` (symmetric quantisation, one scale per slice along the first axis:
//! `w ≈ q · scale`, `q ∈ [−127, 127]`).

use burn::{
    module::Module,
    store::{DTypePolicy, ModuleRecord},
    tensor::{Bytes, DType},
};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, model::Classifier};

/// Suffix of the scale tensor that accompanies an int8 tensor.
const SCALE_SUFFIX: &str = ".__scale";

/// Precision of the stored weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WeightPrecision {
    /// 32-bit floats, exact.
    #[default]
    F32,
    /// IEEE half precision: half the size, ≈3 significant digits per weight.
    F16,
    /// Weight matrices and kernels as 8-bit integers with one f32 scale per row (a quarter of
    /// the size); biases and normalisation parameters as f16.
    Int8,
}

fn pack_error(e: burn_pack::Error) -> Error {
    Error::Weights(e.to_string())
}

fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The model's parameters as burnpack bytes at `precision`.
pub(crate) fn encode(model: &Classifier, precision: WeightPrecision) -> Result<Vec<u8>> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Weights(e.to_string()))?;
    if precision == WeightPrecision::F32 {
        return Ok(bytes.to_vec());
    }
    let tensors = burn_pack::Reader::from_bytes(bytes)
        .and_then(|r| r.into_tensors())
        .map_err(pack_error)?;
    let mut out = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        let (name, dtype, shape, id, data) = tensor.into_parts().map_err(pack_error)?;
        if dtype != DType::F32 {
            out.push(burn_pack::Tensor::new(name, dtype, shape, id, data));
            continue;
        }
        if precision == WeightPrecision::Int8 && shape.num_dims() >= 2 {
            let rows = shape[0];
            let values: Vec<f32> = f32s(&data).collect();
            let row_len = values.len() / rows.max(1);
            let mut scales = Vec::with_capacity(rows);
            let mut quantised = Vec::with_capacity(values.len());
            for row in values.chunks(row_len.max(1)) {
                let scale = row.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
                scales.push(scale);
                quantised.extend(row.iter().map(|&v| {
                    if scale > 0.0 {
                        (v / scale).round().clamp(-127.0, 127.0) as i8 as u8
                    } else {
                        0
                    }
                }));
            }
            let scale_bytes: Vec<u8> = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
            out.push(burn_pack::Tensor::new(
                format!("{name}{SCALE_SUFFIX}"),
                DType::F32,
                [rows],
                None,
                Bytes::from_bytes_vec(scale_bytes),
            ));
            out.push(burn_pack::Tensor::new(
                name,
                DType::I8,
                shape,
                id,
                Bytes::from_bytes_vec(quantised),
            ));
        } else {
            let halves: Vec<u8> = f32s(&data)
                .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
                .collect();
            out.push(burn_pack::Tensor::new(
                name,
                DType::F16,
                shape,
                id,
                Bytes::from_bytes_vec(halves),
            ));
        }
    }
    Ok(burn_pack::Writer::new(out)
        .into_bytes()
        .map_err(pack_error)?
        .to_vec())
}

/// Turns int8 tensors back into f32 (other dtypes are cast by the record loader).
fn dequantise(bytes: &[u8]) -> Result<Bytes> {
    let tensors = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .and_then(|r| r.into_tensors())
        .map_err(pack_error)?;
    let mut parts = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        parts.push(tensor.into_parts().map_err(pack_error)?);
    }
    if !parts.iter().any(|(_, dtype, ..)| *dtype == DType::I8) {
        return Ok(Bytes::from_bytes_vec(bytes.to_vec()));
    }
    let scales: std::collections::HashMap<String, Vec<f32>> = parts
        .iter()
        .filter_map(|(name, dtype, _, _, data)| {
            let base = name.strip_suffix(SCALE_SUFFIX)?;
            (*dtype == DType::F32).then(|| (base.to_string(), f32s(data).collect()))
        })
        .collect();
    let mut out = Vec::with_capacity(parts.len());
    for (name, dtype, shape, id, data) in parts {
        if name.ends_with(SCALE_SUFFIX) {
            continue;
        }
        if dtype != DType::I8 {
            out.push(burn_pack::Tensor::new(name, dtype, shape, id, data));
            continue;
        }
        let scale = scales
            .get(&name)
            .ok_or_else(|| Error::Weights(format!("int8 tensor {name} has no scales")))?;
        let rows = shape.first().copied().unwrap_or(0);
        if scale.len() != rows
            || rows == 0
            || data.len() % rows != 0
            || data.len() != shape.num_elements()
        {
            return Err(Error::Weights(format!(
                "int8 tensor {name} of shape {:?} does not match its {} scales",
                shape.as_slice(),
                scale.len()
            )));
        }
        let row_len = data.len() / rows;
        let values: Vec<u8> = data
            .iter()
            .enumerate()
            .flat_map(|(i, &q)| ((q as i8) as f32 * scale[i / row_len]).to_le_bytes())
            .collect();
        out.push(burn_pack::Tensor::new(
            name,
            DType::F32,
            shape,
            id,
            Bytes::from_bytes_vec(values),
        ));
    }
    burn_pack::Writer::new(out).into_bytes().map_err(pack_error)
}

/// Loads burnpack `bytes` into `model`, converting stored values to the model's f32 and checking
/// that every parameter is present with its exact shape and that nothing is left over.
pub(crate) fn decode(model: Classifier, bytes: &[u8]) -> Result<Classifier> {
    let record = ModuleRecord::from_bytes(dequantise(bytes)?)
        .map_err(|e| Error::Weights(e.to_string()))?
        .with_dtype_policy(DTypePolicy::CastToModule);
    model
        .try_load_record(record)
        .map_err(|e| Error::Weights(e.to_string()))
}
