//! The explanation report: the one JSON schema that `kdlens explain` writes, the browser's
//! worker returns and the page saves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Colormap, Heatmap, Method, Request, colormap::diverging_rgb};
use crate::{
    Error, Result,
    bundle::Manifest,
    image::{RgbaImage, scan::ScanFacts},
    trust::{Faithfulness, InDistribution},
};

/// Version of the report schema; bumped whenever a field changes meaning or disappears.
pub const REPORT_VERSION: u32 = 1;

/// The opacity of a heatmap over its image when none is chosen.
pub const DEFAULT_OPACITY: f32 = 0.5;

/// Which model produced a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// Display name.
    pub name: String,
    /// Architecture name, e.g. `five-layer` or `densenet`.
    pub architecture: String,
    /// SHA-256 of the weights section, hex.
    pub weights_sha256: String,
    /// Class names in index order.
    pub classes: Vec<String>,
    /// Model input `[height, width]`.
    pub input_size: [usize; 2],
}

impl ModelSummary {
    /// The summary of a bundle's manifest.
    pub fn of(manifest: &Manifest) -> Self {
        Self {
            name: manifest.name.clone(),
            architecture: manifest.spec.architecture.name().to_string(),
            weights_sha256: manifest.weights.sha256.clone(),
            classes: manifest.classes.clone(),
            input_size: manifest.spec.input_size,
        }
    }
}

/// Which image a report explains. Only the file name, the size and — for a DICOM or NIfTI scan —
/// how it was shown (modality, frame, slice, window): nothing else about the file, and nothing
/// about the patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// File name as the user gave it (no folder).
    pub name: String,
    /// Width in pixels, as decoded.
    pub width: usize,
    /// Height in pixels, as decoded.
    pub height: usize,
    /// The acquisition facts of a scan and the frame, slice and window shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanFacts>,
}

/// The channel-mean feature map of one stage (KD-FMV).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerMap {
    /// Stage name, e.g. `conv3`.
    pub layer: String,
    /// Channels averaged.
    pub channels: usize,
    /// `[height, width]` of the stage.
    pub size: [usize; 2],
    /// `height · width` channel means, row-major, not normalised.
    pub values: Vec<f32>,
}

impl LayerMap {
    /// The values as a [`Heatmap`].
    pub fn heatmap(&self) -> Heatmap {
        Heatmap::new(self.layer.clone(), self.size, self.values.clone())
    }

    /// As the paper shows it: bilinearly resized to `size`, then min-max normalised to `[0, 1]`.
    pub fn display(&self, size: [usize; 2]) -> Heatmap {
        self.heatmap().resized(size).min_max_normalized()
    }
}

/// `Σ φ ≈ output − reference` for an input attribution (integrated gradients, SHAP).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Completeness {
    /// The class logit at the input.
    pub output: f32,
    /// The class logit at the baseline (integrated gradients) or its mean over the background
    /// set (SHAP's expected value).
    pub reference: f32,
    /// The sum of all attributions.
    pub total: f32,
}

/// The map one method made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodMap {
    /// The method.
    pub method: Method,
    /// The class explained.
    pub class: usize,
    /// The stage the map lives on (`input` for integrated gradients and SHAP).
    pub layer: String,
    /// `[height, width]` of the map.
    pub size: [usize; 2],
    /// `height · width` values, row-major: `≥ 0` and not normalised for the CAM methods; signed
    /// attributions summed over the colour channels for integrated gradients and SHAP.
    pub values: Vec<f32>,
    /// The channel weights of Grad-CAM and Grad-CAM++.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_weights: Option<Vec<f32>>,
    /// Completeness of integrated gradients and SHAP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completeness: Option<Completeness>,
}

impl MethodMap {
    /// The values as a [`Heatmap`].
    pub fn heatmap(&self) -> Heatmap {
        Heatmap::new(self.layer.clone(), self.size, self.values.clone())
    }

    /// Ready to draw at `size`: a CAM divided by its maximum then resized (`[0, 1]`); a signed
    /// attribution resized then divided by its largest magnitude (`[−1, 1]`).
    pub fn display(&self, size: [usize; 2]) -> Heatmap {
        if self.method.is_signed() {
            let map = self.heatmap().resized(size);
            let scale = map.values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let values = if scale > 0.0 && scale.is_finite() {
                map.values.iter().map(|v| v / scale).collect()
            } else {
                vec![0.0; map.values.len()]
            };
            Heatmap::new(map.layer, size, values)
        } else {
            self.heatmap().max_normalized().resized(size)
        }
    }

    /// The importance of each input pixel that deletion and insertion rank by: the raw values
    /// bilinearly resized to the input's `size`.
    pub fn saliency(&self, size: [usize; 2]) -> Vec<f32> {
        self.heatmap().resized(size).values
    }
}

/// What can be drawn from a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum View {
    /// The feature-map mean of the stage with this index (forward order).
    FeatureMap(usize),
    /// The map of a method.
    Method(Method),
}

impl std::str::FromStr for View {
    type Err = Error;

    /// `feature-map:K` (a stage index) or a method name such as `grad-cam++`.
    fn from_str(text: &str) -> Result<Self> {
        match text.strip_prefix("feature-map:") {
            Some(index) => index.parse().map(View::FeatureMap).map_err(|_| {
                Error::InvalidRequest(format!("`{text}`: a feature-map view needs a stage index"))
            }),
            None => text.parse().map(View::Method),
        }
    }
}

/// One explained image: prediction, every stage's feature map, the requested methods' maps,
/// their faithfulness, and whether the input resembles the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The model (from its bundle's manifest; `None` for a bare network).
    pub model: Option<ModelSummary>,
    /// The image (filled in by whoever decoded it).
    pub image: Option<ImageSummary>,
    /// What was asked for.
    pub request: Request,
    /// The compute backend, e.g. `flex`, `wgpu`, `webgpu` or `cpu` (filled in by the caller).
    pub backend: Option<String>,
    /// Logits, one per class.
    pub logits: Vec<f32>,
    /// Softmax of the logits.
    pub probabilities: Vec<f32>,
    /// Index of the most probable class.
    pub predicted: usize,
    /// The class the maps explain.
    pub class: usize,
    /// Every stage's channel-mean map, in forward order.
    pub feature_maps: Vec<LayerMap>,
    /// One map per requested method, in [`Method::ALL`] order.
    pub maps: Vec<MethodMap>,
    /// Deletion and insertion curves of every map (when requested).
    pub faithfulness: Vec<Faithfulness>,
    /// Whether the input looks like the training data (when the bundle carries a reference).
    pub in_distribution: Option<InDistribution>,
    /// Milliseconds per step (`forward`, `cam`, each method, `faithfulness`, `total`).
    pub timings_ms: BTreeMap<String, f64>,
}

impl Report {
    /// The name of class `index`, when the model's classes are known.
    pub fn class_name(&self, index: usize) -> Option<&str> {
        self.model
            .as_ref()
            .and_then(|m| m.classes.get(index))
            .map(String::as_str)
    }

    /// The map of `method`, if it was computed.
    pub fn map(&self, method: Method) -> Option<&MethodMap> {
        self.maps.iter().find(|m| m.method == method)
    }

    /// The deletion and insertion curves of `method`, if they were computed.
    pub fn faithfulness_of(&self, method: Method) -> Option<&Faithfulness> {
        self.faithfulness.iter().find(|f| f.method == method)
    }

    /// Every view this report can draw: each stage's feature map, then each method's map.
    pub fn views(&self) -> Vec<View> {
        (0..self.feature_maps.len())
            .map(View::FeatureMap)
            .chain(self.maps.iter().map(|m| View::Method(m.method)))
            .collect()
    }

    /// The normalised map of `view` at `size` `[height, width]`: `[0, 1]` for feature maps and
    /// CAMs, `[−1, 1]` for signed attributions (see [`MethodMap::display`]).
    pub fn display(&self, view: &View, size: [usize; 2]) -> Result<Heatmap> {
        match view {
            View::FeatureMap(k) => self
                .feature_maps
                .get(*k)
                .map(|m| m.display(size))
                .ok_or_else(|| {
                    Error::InvalidRequest(format!(
                        "no feature map {k}: the report has {}",
                        self.feature_maps.len()
                    ))
                }),
            View::Method(method) => self
                .map(*method)
                .map(|m| m.display(size))
                .ok_or_else(|| Error::InvalidRequest(format!("the report has no {method} map"))),
        }
    }

    /// `view` as RGBA pixels of `size` `[height, width]`, to be laid over the image: feature
    /// maps and CAMs in `colormap` with alpha `opacity`; signed attributions red (for the
    /// class) and blue (against it) with alpha `opacity · |v|`, so that zero is transparent.
    pub fn render(
        &self,
        view: &View,
        size: [usize; 2],
        colormap: Colormap,
        opacity: f32,
    ) -> Result<RgbaImage> {
        if size[0] == 0 || size[1] == 0 || size[0] > 4096 || size[1] > 4096 {
            return Err(Error::InvalidRequest(format!(
                "render size {}×{} must be 1–4096 pixels per side",
                size[1], size[0]
            )));
        }
        let map = self.display(view, size)?;
        let opacity = if opacity.is_nan() {
            0.0
        } else {
            opacity.clamp(0.0, 1.0)
        };
        let signed = matches!(view, View::Method(m) if m.is_signed());
        let pixels = map
            .values
            .iter()
            .flat_map(|&v| {
                let (rgb, alpha) = if signed {
                    (diverging_rgb(v), opacity * v.abs().min(1.0))
                } else {
                    (colormap.rgb(v), opacity)
                };
                [rgb[0], rgb[1], rgb[2], (alpha * 255.0).round() as u8]
            })
            .collect();
        RgbaImage::new(size[1], size[0], pixels)
    }
}
