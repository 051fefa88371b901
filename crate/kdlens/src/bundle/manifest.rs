//! The bundle's manifest: what the weights are and how to feed them.

use serde::{Deserialize, Serialize};

use super::{ShapBackground, WeightPrecision};
use crate::{
    Error, Result,
    image::{Preprocessing, RgbaImage},
    metrics::ClassificationReport,
    model::ModelSpec,
    trust::OodReference,
};

/// Largest input side a bundle may declare, in pixels.
pub const MAX_INPUT_SIDE: usize = 2048;
/// Largest class count a bundle may declare.
pub const MAX_CLASSES: usize = 10_000;
/// Largest parameter count a bundle may declare (12× DenseNet-121), so that a small hostile file
/// cannot make a reader allocate gigabytes for a model it will then reject.
pub const MAX_PARAMS: u64 = 100_000_000;

/// Where a model came from, for the page's "About this model" panel and for reproducing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Provenance {
    /// Version of kdlens that wrote the bundle.
    pub kdlens_version: String,
    /// Creation time, RFC 3339 (UTC).
    pub created: String,
    /// Human description of the training data (name, split, licence).
    pub dataset: Option<String>,
    /// SHA-256 over the training file list and labels, hex.
    pub dataset_sha256: Option<String>,
    /// Random seed of the training run.
    pub seed: Option<u64>,
}

/// Facts about the stored weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsInfo {
    /// Storage precision.
    pub precision: WeightPrecision,
    /// Number of parameters (scalars).
    pub params: u64,
    /// SHA-256 of the weights section, hex.
    pub sha256: String,
}

/// Everything about a model except its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Display name, e.g. `fashion-mnist five-layer student (KD α=0.7 T=10)`.
    pub name: String,
    /// Architecture, class count and input size.
    pub spec: ModelSpec,
    /// Class names in index order (`spec.num_classes` of them).
    pub classes: Vec<String>,
    /// How to turn pixels into the model input.
    pub preprocessing: Preprocessing,
    /// Facts about the weights section.
    pub weights: WeightsInfo,
    /// Test-set metrics, when the model was evaluated before export.
    #[serde(default)]
    pub metrics: Option<ClassificationReport>,
    /// Training configuration as the run recorded it (free-form).
    #[serde(default)]
    pub training: Option<serde_json::Value>,
    /// Origin of the model.
    #[serde(default)]
    pub provenance: Provenance,
    /// A sentence on what the model is for and not for, shown to users.
    #[serde(default)]
    pub intended_use: Option<String>,
    /// What the model saw in training, for the out-of-distribution warning.
    #[serde(default)]
    pub ood_reference: Option<OodReference>,
    /// Training images that SHAP explains against (`kdlens export --background-images`); without them,
    /// [`default_background_images`](super::default_background_images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shap_background: Option<ShapBackground>,
}

impl Manifest {
    /// A manifest with the required fields; metrics, training configuration, provenance and the
    /// intended-use note start empty, and the weights section is filled in by
    /// [`Bundle::new`](super::Bundle::new).
    pub fn new(
        name: impl Into<String>,
        spec: ModelSpec,
        classes: Vec<String>,
        preprocessing: Preprocessing,
    ) -> Self {
        Self {
            name: name.into(),
            spec,
            classes,
            preprocessing,
            weights: WeightsInfo {
                precision: WeightPrecision::F32,
                params: 0,
                sha256: String::new(),
            },
            metrics: None,
            training: None,
            provenance: Provenance {
                kdlens_version: env!("CARGO_PKG_VERSION").to_string(),
                ..Provenance::default()
            },
            intended_use: None,
            ood_reference: None,
            shap_background: None,
        }
    }

    /// SHAP's background images: the bundle's set, or a black and a mid-gray image
    /// ([`default_background_images`](super::default_background_images)) when it has none.
    pub fn shap_background_images(&self) -> Result<Vec<RgbaImage>> {
        match &self.shap_background {
            Some(background) => background.images(),
            None => Ok(super::default_background_images()),
        }
    }

    /// Checks the manifest for internal consistency and sane sizes.
    pub fn validate(&self) -> Result<()> {
        let spec = &self.spec;
        if spec.num_classes > MAX_CLASSES {
            return Err(Error::InvalidBundle(format!(
                "manifest declares {} classes; at most {MAX_CLASSES} are supported",
                spec.num_classes
            )));
        }
        if spec.input_size.iter().any(|&s| s > MAX_INPUT_SIDE) {
            return Err(Error::InvalidBundle(format!(
                "manifest declares a {}×{} input; at most {MAX_INPUT_SIDE} pixels per side are supported",
                spec.input_size[0], spec.input_size[1]
            )));
        }
        spec.validate()
            .map_err(|e| Error::InvalidBundle(format!("manifest model spec: {e}")))?;
        if self.classes.len() != spec.num_classes {
            return Err(Error::InvalidBundle(format!(
                "manifest names {} classes but the model has {} outputs",
                self.classes.len(),
                spec.num_classes
            )));
        }
        if self.preprocessing.input_size != spec.input_size {
            return Err(Error::InvalidBundle(format!(
                "preprocessing resizes to {:?} but the model takes {:?}",
                self.preprocessing.input_size, spec.input_size
            )));
        }
        self.preprocessing
            .validate()
            .map_err(|e| Error::InvalidBundle(format!("manifest preprocessing: {e}")))?;
        if let Some(background) = &self.shap_background {
            background.validate(spec.input_size, spec.num_classes)?;
        }
        if let Some(reference) = &self.ood_reference {
            reference.validate(spec.num_classes)?;
        }
        let expected = spec.cost().params();
        if expected > MAX_PARAMS {
            return Err(Error::InvalidBundle(format!(
                "manifest describes a model with {expected} parameters; at most {MAX_PARAMS} are supported"
            )));
        }
        if self.weights.params != expected {
            return Err(Error::InvalidBundle(format!(
                "manifest counts {} parameters but a {} with {} classes has {expected}",
                self.weights.params,
                spec.architecture.name(),
                spec.num_classes
            )));
        }
        Ok(())
    }
}
