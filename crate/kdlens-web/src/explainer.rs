//! The `Explainer` class seen from JavaScript.

use burn::tensor::Device;
use kdlens::{
    bundle::Bundle,
    explain::{CamScore, Colormap, ExplainOptions, Explanation, Target, explain, predict},
    image::RgbaImage,
    model::{Classifier, LayeredClassifier},
};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

/// Serialises to plain JavaScript objects and arrays (not `Map`s), so results can be posted
/// between threads and turned into JSON.
fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&format!("cannot pass the result to JavaScript: {e}")))
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Which compute backend runs, and why.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct BackendInfo {
    /// `webgpu` or `cpu`.
    name: &'static str,
    /// Why this backend was chosen.
    reason: String,
}

/// Options of one explanation, as the page sends them.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JsExplainOptions {
    /// Grad-CAM stage name; absent: the last stage.
    layer: Option<String>,
    /// Class index; absent: the predicted class.
    target: Option<usize>,
    /// `logit` (default) or `probability`.
    score: Option<String>,
}

/// What `predict` returns.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PredictOut {
    probabilities: Vec<f32>,
    predicted: usize,
    /// Milliseconds spent resizing and normalising the pixels.
    preprocess_ms: f64,
    /// Milliseconds of the forward pass, read-back included.
    forward_ms: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MapOut {
    layer: String,
    channels: usize,
    size: [usize; 2],
    /// Channel means at the stage's resolution, a `Float32Array`.
    #[serde(with = "serde_wasm_bindgen::preserve")]
    raw: JsValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CamOut {
    layer: String,
    class: usize,
    score: CamScore,
    size: [usize; 2],
    /// Grad-CAM divided by its maximum, at the stage's resolution, a `Float32Array`.
    #[serde(with = "serde_wasm_bindgen::preserve")]
    map: JsValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExplainOut {
    probabilities: Vec<f32>,
    logits: Vec<f32>,
    predicted: usize,
    feature_maps: Vec<MapOut>,
    grad_cam: CamOut,
    timings: kdlens::explain::Timings,
    /// Decoding-independent preprocessing of the pixels (resize, normalise, upload), ms.
    preprocess_ms: f64,
    backend: BackendInfo,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelOut<'a> {
    manifest: &'a kdlens::bundle::Manifest,
    layers: Vec<kdlens::model::LayerInfo>,
    bundle_bytes: usize,
}

/// A model on a device, ready to explain images.
#[wasm_bindgen]
pub struct Explainer {
    device: Device,
    backend: BackendInfo,
    model: Option<(Bundle, Classifier, usize)>,
    last: Option<Explanation>,
}

#[wasm_bindgen]
impl Explainer {
    /// Starts on WebGPU when `backend` is `"webgpu"` and an adapter can be initialised, on the
    /// CPU (burn's `flex` inside WebAssembly) otherwise; `reason` explains a CPU choice made by
    /// the page (no adapter, user choice, lost device).
    pub async fn start(backend: String, reason: String) -> Explainer {
        let (device, backend) = if backend == "webgpu" {
            match Device::wgpu_options().init_async().await {
                Ok(device) => (
                    device,
                    BackendInfo {
                        name: "webgpu",
                        reason: "WebGPU adapter available".into(),
                    },
                ),
                Err(e) => (
                    Device::flex(),
                    BackendInfo {
                        name: "cpu",
                        reason: format!("WebGPU could not start ({e}); running on the CPU"),
                    },
                ),
            }
        } else {
            (
                Device::flex(),
                BackendInfo {
                    name: "cpu",
                    reason,
                },
            )
        };
        Explainer {
            device,
            backend,
            model: None,
            last: None,
        }
    }

    /// The backend in use: `{ name, reason }`.
    pub fn backend(&self) -> Result<JsValue, JsError> {
        to_js(&self.backend)
    }

    /// Validates a model bundle and makes it the current model. On any error the previous model
    /// stays in use. Returns `{ manifest, layers, bundleBytes }`.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(&mut self, bytes: &[u8]) -> Result<JsValue, JsError> {
        let bundle = Bundle::from_bytes(bytes).map_err(js_error)?;
        let model = bundle.load_model(&self.device).map_err(js_error)?;
        self.model = Some((bundle, model, bytes.len()));
        self.last = None;
        self.model_info()
    }

    /// The current model: `{ manifest, layers, bundleBytes }`.
    #[wasm_bindgen(js_name = modelInfo)]
    pub fn model_info(&self) -> Result<JsValue, JsError> {
        let (bundle, model, bytes) = self
            .model
            .as_ref()
            .ok_or_else(|| JsError::new("no model loaded"))?;
        to_js(&ModelOut {
            manifest: bundle.manifest(),
            layers: model.layers(),
            bundle_bytes: *bytes,
        })
    }

    /// The loaded model's input tensor for RGBA pixels (`width × height × 4` bytes), through the
    /// core's preprocessing path and the bundle's normalisation.
    fn input(
        &self,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
    ) -> Result<burn::tensor::Tensor<4>, JsError> {
        let (bundle, _, _) = self
            .model
            .as_ref()
            .ok_or_else(|| JsError::new("no model loaded"))?;
        let image = RgbaImage::new(width, height, rgba).map_err(js_error)?;
        bundle
            .manifest()
            .preprocessing
            .to_tensor(&image, &self.device)
            .map_err(js_error)
    }

    /// Class probabilities only (no maps, no Grad-CAM) for RGBA pixels, with the time the
    /// forward pass took: `{ probabilities, predicted, preprocessMs, forwardMs }`.
    pub async fn predict(
        &mut self,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
    ) -> Result<JsValue, JsError> {
        let started = web_time::Instant::now();
        let input = self.input(rgba, width, height)?;
        let preprocessed = web_time::Instant::now();
        let (_, model, _) = self
            .model
            .as_ref()
            .ok_or_else(|| JsError::new("no model loaded"))?;
        let probabilities = predict(model, input).await.map_err(js_error)?;
        let predicted = kdlens::explain::argmax(&probabilities);
        to_js(&PredictOut {
            preprocess_ms: (preprocessed - started).as_secs_f64() * 1e3,
            forward_ms: preprocessed.elapsed().as_secs_f64() * 1e3,
            probabilities,
            predicted,
        })
    }

    /// Explains RGBA pixels (`width × height × 4` bytes): class probabilities, every stage's
    /// feature map, Grad-CAM for `options` (`{ layer?, target?, score? }`) and timings.
    pub async fn explain(
        &mut self,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
        options: JsValue,
    ) -> Result<JsValue, JsError> {
        let options: JsExplainOptions = if options.is_undefined() || options.is_null() {
            JsExplainOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options)
                .map_err(|e| JsError::new(&format!("bad explain options: {e}")))?
        };
        let started = web_time::Instant::now();
        let input = self.input(rgba, width, height)?;
        let preprocess_ms = started.elapsed().as_secs_f64() * 1e3;
        let (_, model, _) = self
            .model
            .as_ref()
            .ok_or_else(|| JsError::new("no model loaded"))?;
        let request = ExplainOptions {
            layer: options.layer,
            target: options
                .target
                .map(Target::Class)
                .unwrap_or(Target::Predicted),
            score: match options.score.as_deref() {
                None | Some("logit") => CamScore::Logit,
                Some("probability") => CamScore::Probability,
                Some(other) => {
                    return Err(JsError::new(&format!(
                        "unknown score {other:?}: use logit or probability"
                    )));
                }
            },
        };
        let explanation = explain(model, input, &request).await.map_err(js_error)?;
        let layers = model.layers();
        let cam = &explanation.grad_cam;
        let out = ExplainOut {
            probabilities: explanation.probabilities.clone(),
            logits: explanation.logits.clone(),
            predicted: explanation.predicted,
            feature_maps: explanation
                .feature_maps
                .iter()
                .zip(&layers)
                .map(|(m, info)| MapOut {
                    layer: m.layer.clone(),
                    channels: info.channels,
                    size: m.size,
                    raw: js_sys::Float32Array::from(&m.values[..]).into(),
                })
                .collect(),
            grad_cam: CamOut {
                layer: cam.raw.layer.clone(),
                class: cam.class,
                score: cam.score,
                size: cam.raw.size,
                map: js_sys::Float32Array::from(&cam.raw.max_normalized().values[..]).into(),
            },
            timings: explanation.timings,
            preprocess_ms,
            backend: self.backend.clone(),
        };
        self.last = Some(explanation);
        to_js(&out)
    }

    /// An `ImageData` of `width × height` pixels: the last explanation's stage `index` feature
    /// map (resized, min-max normalised, coloured), or its Grad-CAM when `index` is negative.
    /// `colormap` is `jet` or `viridis`.
    pub fn render(
        &self,
        index: i32,
        colormap: String,
        height: usize,
        width: usize,
    ) -> Result<web_sys::ImageData, JsError> {
        let explanation = self
            .last
            .as_ref()
            .ok_or_else(|| JsError::new("nothing explained yet"))?;
        if height == 0 || width == 0 || height > 4096 || width > 4096 {
            return Err(JsError::new(&format!(
                "render size {width}×{height} must be 1–4096 pixels per side"
            )));
        }
        let colormap = match colormap.as_str() {
            "jet" => Colormap::Jet,
            "viridis" => Colormap::Viridis,
            other => {
                return Err(JsError::new(&format!(
                    "unknown colormap {other:?}: use jet or viridis"
                )));
            }
        };
        let map = if index < 0 {
            explanation.grad_cam.display([height, width])
        } else {
            let map = explanation
                .feature_maps
                .get(index as usize)
                .ok_or_else(|| JsError::new(&format!("no stage {index}")))?;
            map.resized([height, width]).min_max_normalized()
        };
        let pixels = colormap.colorize(&map).into_pixels();
        web_sys::ImageData::new_with_u8_clamped_array_and_sh(
            wasm_bindgen::Clamped(&pixels),
            width as u32,
            height as u32,
        )
        .map_err(|e| JsError::new(&format!("cannot create the image: {e:?}")))
    }
}
