//! Reading and writing the bundle container.

use burn::{module::Module, tensor::Device};

use sha2::{Digest, Sha256};

use super::{Manifest, WeightPrecision, WeightsInfo, weights};
use crate::{
    Error, Result,
    model::{Classifier, trainable_params},
};

/// The eight bytes every bundle starts with.
pub const MAGIC: [u8; 8] = *b"KDLENS\0\n";
/// The container version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Largest manifest accepted, in bytes.
const MAX_MANIFEST: usize = 4 << 20;
/// Length of the trailing checksum.
const CHECKSUM: usize = 32;

/// A model bundle in memory: a validated manifest and its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    manifest: Manifest,
    weights: Vec<u8>,
}

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Splits `n` bytes off the front of `rest`, or says which field was cut short.
fn take<'a>(rest: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8]> {
    if rest.len() < n {
        return Err(Error::InvalidBundle(format!(
            "file ends inside the {what} (needs {n} more bytes, {} left); it is truncated",
            rest.len()
        )));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

/// The container around an already serialised manifest and weights section: magic, version,
/// both lengths and the trailing SHA-256 checksum. Nothing is validated — [`Bundle::to_bytes`]
/// frames valid parts; tests and the fuzzer frame deliberately wrong ones.
pub fn frame(manifest_json: &[u8], weights: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 4 + 4 + manifest_json.len() + 8 + weights.len() + 32);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(manifest_json.len() as u32).to_le_bytes());
    out.extend_from_slice(manifest_json);
    out.extend_from_slice(&(weights.len() as u64).to_le_bytes());
    out.extend_from_slice(weights);
    let checksum = Sha256::digest(&out);
    out.extend_from_slice(&checksum);
    out
}

impl Bundle {
    /// Packs `model` with the manifest fields of `manifest`; the `weights` section of the
    /// manifest is filled in here (precision, parameter count, hash). The manifest is validated
    /// against the model.
    pub fn new(
        model: &Classifier,
        mut manifest: Manifest,
        precision: WeightPrecision,
    ) -> Result<Self> {
        let weights = weights::encode(model, precision)?;
        manifest.weights = WeightsInfo {
            precision,
            params: trainable_params(model),
            sha256: sha256_hex(&weights),
        };
        manifest.validate()?;
        Ok(Self { manifest, weights })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Size of the weights section in bytes.
    pub fn weights_len(&self) -> usize {
        self.weights.len()
    }

    /// The container bytes (see the [module documentation](super)).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let manifest = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| Error::InvalidBundle(format!("manifest does not serialise: {e}")))?;
        // Never write what `from_bytes` would refuse.
        if manifest.len() > MAX_MANIFEST {
            return Err(Error::InvalidBundle(format!(
                "the manifest would be {} bytes; a bundle holds at most {MAX_MANIFEST} (store fewer SHAP background images)",
                manifest.len()
            )));
        }
        Ok(frame(&manifest, &self.weights))
    }

    /// Parses and checks a container: magic, version, lengths, checksum, manifest and weights
    /// hash. The weights are not applied to a model yet (see [`Bundle::load_model`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(Error::InvalidBundle(
                "not a kdlens model bundle (the file does not start with the kdlens magic bytes)"
                    .into(),
            ));
        }
        let mut rest = &bytes[MAGIC.len()..];
        let version =
            u32::from_le_bytes(take(&mut rest, 4, "version")?.try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(Error::InvalidBundle(format!(
                "bundle format version {version}; this kdlens reads version {FORMAT_VERSION}"
            )));
        }
        let manifest_len = u32::from_le_bytes(
            take(&mut rest, 4, "manifest length")?
                .try_into()
                .expect("4 bytes"),
        ) as usize;
        if manifest_len > MAX_MANIFEST {
            return Err(Error::InvalidBundle(format!(
                "manifest claims {manifest_len} bytes; at most {MAX_MANIFEST} are accepted"
            )));
        }
        let manifest_bytes = take(&mut rest, manifest_len, "manifest")?;
        let weights_len = u64::from_le_bytes(
            take(&mut rest, 8, "weights length")?
                .try_into()
                .expect("8 bytes"),
        );
        let weights_len = usize::try_from(weights_len)
            .ok()
            .filter(|&n| n <= rest.len())
            .ok_or_else(|| {
                Error::InvalidBundle(format!(
                    "weights section claims {weights_len} bytes but only {} remain; the file is truncated",
                    rest.len()
                ))
            })?;
        let weights = take(&mut rest, weights_len, "weights")?;
        let stored = take(&mut rest, CHECKSUM, "checksum")?;
        if !rest.is_empty() {
            return Err(Error::InvalidBundle(format!(
                "{} unexpected bytes after the checksum",
                rest.len()
            )));
        }
        let body = &bytes[..bytes.len() - CHECKSUM];
        if Sha256::digest(body).as_slice() != stored {
            return Err(Error::InvalidBundle(
                "checksum mismatch: the file is corrupted (bytes changed after it was written)"
                    .into(),
            ));
        }
        let manifest: Manifest = serde_json::from_slice(manifest_bytes)
            .map_err(|e| Error::InvalidBundle(format!("manifest is not valid: {e}")))?;
        manifest.validate()?;
        let hash = sha256_hex(weights);
        if hash != manifest.weights.sha256 {
            return Err(Error::InvalidBundle(format!(
                "weights hash {hash} differs from the manifest's {}",
                manifest.weights.sha256
            )));
        }
        Ok(Self {
            manifest,
            weights: weights.to_vec(),
        })
    }

    /// Builds the model the manifest describes on `device`, loads the weights (checking every
    /// parameter's presence and shape) and returns it in inference mode.
    pub fn load_model(&self, device: &Device) -> Result<Classifier> {
        // Every parameter takes at least one byte (int8); refuse before allocating the model.
        let min_bytes = self.manifest.weights.params
            * match self.manifest.weights.precision {
                WeightPrecision::F32 => 4,
                WeightPrecision::F16 => 2,
                WeightPrecision::Int8 => 1,
            };
        if (self.weights.len() as u64) < min_bytes {
            return Err(Error::InvalidBundle(format!(
                "weights section holds {} bytes but {} {:?} parameters need at least {min_bytes}",
                self.weights.len(),
                self.manifest.weights.params,
                self.manifest.weights.precision
            )));
        }
        let model = self.manifest.spec.init(device)?;
        let model = weights::decode(model, &self.weights).map_err(|e| {
            Error::InvalidBundle(format!("weights do not match the manifest's model: {e}"))
        })?;
        Ok(model.valid())
    }
}
