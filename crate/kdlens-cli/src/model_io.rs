//! Model files: kdlens bundles on disk.

use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::Device;
use kdlens::{
    bundle::{Bundle, Manifest, WeightPrecision},
    model::Classifier,
};

use crate::fsutil::write_atomic;

/// A model read from disk: its manifest and the network in inference mode.
pub struct LoadedModel {
    /// The bundle (manifest and weights).
    pub bundle: Bundle,
    /// The network on the requested device, in inference mode.
    pub model: Classifier,
}

impl LoadedModel {
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        self.bundle.manifest()
    }
}

/// Reads and validates a `.kdlens` file and builds its model on `device`.
pub fn load(path: &Path, device: &Device) -> Result<LoadedModel> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read model file {}", path.display()))?;
    let bundle = Bundle::from_bytes(&bytes)
        .with_context(|| format!("{} is not a usable kdlens model", path.display()))?;
    let model = bundle
        .load_model(device)
        .with_context(|| format!("{}: cannot build the model", path.display()))?;
    Ok(LoadedModel { bundle, model })
}

/// Packs `model` with `manifest` and writes it to `path` atomically.
pub fn save(
    path: &Path,
    model: &Classifier,
    manifest: Manifest,
    precision: WeightPrecision,
) -> Result<Bundle> {
    let bundle = Bundle::new(model, manifest, precision).context("cannot pack the model")?;
    write_atomic(path, &bundle.to_bytes()?)?;
    Ok(bundle)
}
