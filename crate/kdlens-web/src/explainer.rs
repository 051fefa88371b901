//! The `Explainer` class seen from JavaScript.

use burn::tensor::Device;
use kdlens::{
    bundle::Bundle,
    explain::{
        Colormap, Context, ImageSummary, Method, Progress, Report, Request, View, explain, predict,
    },
    image::RgbaImage,
    model::{Classifier, LayeredClassifier},
    trust::{Agreement, Audit, AuditInput, AuditPlan, CAM_MIN_SIDE, ImageAudit},
};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// Serialises to plain JavaScript objects and arrays (not `Map`s), so results can be posted
/// between threads and turned into JSON.
pub(crate) fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&format!("cannot pass the result to JavaScript: {e}")))
}

/// The report as a JavaScript object whose maps' `values` are `Float32Array`s: one copy out of
/// the WebAssembly memory each, where plain arrays cost one JavaScript number per value (a few
/// milliseconds for every layer's map at 224²) and as much again in the worker's message. The page
/// turns them back into arrays when it saves the report as JSON, so the schema is unchanged.
fn report_to_js(report: &mut Report) -> Result<JsValue, JsError> {
    let feature_values: Vec<Vec<f32>> = report
        .feature_maps
        .iter_mut()
        .map(|m| std::mem::take(&mut m.values))
        .collect();
    let method_values: Vec<Vec<f32>> = report
        .maps
        .iter_mut()
        .map(|m| std::mem::take(&mut m.values))
        .collect();
    let js = to_js(report).and_then(|js| {
        set_values(&js, "feature_maps", &feature_values)?;
        set_values(&js, "maps", &method_values)?;
        Ok(js)
    });
    for (map, values) in report.feature_maps.iter_mut().zip(feature_values) {
        map.values = values;
    }
    for (map, values) in report.maps.iter_mut().zip(method_values) {
        map.values = values;
    }
    js
}

/// `object[list][k].values = Float32Array(values[k])` for every `k`.
fn set_values(object: &JsValue, list: &str, values: &[Vec<f32>]) -> Result<(), JsError> {
    let missing = |e: JsValue| JsError::new(&format!("cannot pass the report's {list}: {e:?}"));
    let list = js_sys::Reflect::get(object, &list.into()).map_err(missing)?;
    for (k, values) in values.iter().enumerate() {
        let map = js_sys::Reflect::get_u32(&list, k as u32).map_err(missing)?;
        let array = js_sys::Float32Array::from(values.as_slice());
        js_sys::Reflect::set(&map, &"values".into(), &array).map_err(missing)?;
    }
    Ok(())
}

/// The core's `Request` from a plain object (`undefined` or `null`: the defaults).
fn parse_request(request: JsValue) -> Result<Request, JsError> {
    if request.is_undefined() || request.is_null() {
        return Ok(Request::default());
    }
    serde_wasm_bindgen::from_value(request)
        .map_err(|e| JsError::new(&format!("bad explanation request: {e}")))
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Where the page's controls start: the core's defaults, so that the page writes none of its own.
#[derive(Serialize)]
struct Defaults {
    /// `Request::default()`: the method, the CAM score, SHAP's sample count, no faithfulness
    /// curves, ….
    request: Request,
    /// The overlay's opacity in `[0, 1]`.
    opacity: f32,
    /// The overlay's colormap.
    colormap: Colormap,
    /// The methods an audit of many images explains with.
    audit_methods: Vec<Method>,
}

/// The core's defaults for the page's controls: `{ request, opacity, colormap, audit_methods }`.
#[wasm_bindgen]
pub fn defaults() -> Result<JsValue, JsError> {
    to_js(&Defaults {
        request: Request::default(),
        opacity: kdlens::explain::DEFAULT_OPACITY,
        colormap: Colormap::default(),
        audit_methods: kdlens::trust::audit::DEFAULT_METHODS.to_vec(),
    })
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
struct ModelOut<'a> {
    manifest: &'a kdlens::bundle::Manifest,
    layers: Vec<kdlens::model::LayerInfo>,
    bundle_bytes: usize,
}

/// A loaded bundle: its manifest and weights, the model built from them, the bundle's size.
type Loaded = (Bundle, Classifier, usize);

/// Which of the two models a call is about.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// The page's model (the student).
    Model,
    /// An optional second model of the same classes shown beside it (the teacher).
    Teacher,
}

/// A model on a device, ready to explain images; optionally a teacher beside it.
#[wasm_bindgen]
pub struct Explainer {
    device: Device,
    backend: BackendInfo,
    model: Option<Loaded>,
    last: Option<Report>,
    teacher: Option<Loaded>,
    last_teacher: Option<Report>,
    progress_listener: Option<js_sys::Function>,
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
            teacher: None,
            last_teacher: None,
            progress_listener: None,
        }
    }

    /// `listener(step, done, total)` is called as a long explanation step advances (SHAP's
    /// samples); `undefined` removes it.
    #[wasm_bindgen(js_name = setProgressListener)]
    pub fn set_progress_listener(&mut self, listener: Option<js_sys::Function>) {
        self.progress_listener = listener;
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

    /// Validates a teacher bundle (it must name the model's classes, in order) and shows it
    /// beside the model from the next explanation on. On any error the previous teacher stays.
    /// Returns `{ manifest, layers, bundleBytes }`.
    #[wasm_bindgen(js_name = loadTeacher)]
    pub fn load_teacher(&mut self, bytes: &[u8]) -> Result<JsValue, JsError> {
        let bundle = Bundle::from_bytes(bytes).map_err(js_error)?;
        let (model_bundle, _, _) = self.loaded(Role::Model)?;
        let (ours, theirs) = (&model_bundle.manifest().classes, &bundle.manifest().classes);
        if ours != theirs {
            return Err(JsError::new(&format!(
                "the teacher's classes {theirs:?} are not the model's {ours:?}: a teacher must be of the same task"
            )));
        }
        let model = bundle.load_model(&self.device).map_err(js_error)?;
        let info = to_js(&ModelOut {
            manifest: bundle.manifest(),
            layers: model.layers(),
            bundle_bytes: bytes.len(),
        });
        self.teacher = Some((bundle, model, bytes.len()));
        self.last_teacher = None;
        info
    }

    /// Removes the teacher.
    #[wasm_bindgen(js_name = removeTeacher)]
    pub fn remove_teacher(&mut self) {
        self.teacher = None;
        self.last_teacher = None;
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

    /// The model or the teacher, or an error saying it is not loaded.
    fn loaded(&self, role: Role) -> Result<&Loaded, JsError> {
        match role {
            Role::Model => self.model.as_ref(),
            Role::Teacher => self.teacher.as_ref(),
        }
        .ok_or_else(|| {
            JsError::new(match role {
                Role::Model => "no model loaded",
                Role::Teacher => "no teacher loaded",
            })
        })
    }

    /// The model's input tensor for RGBA pixels (`width × height × 4` bytes), through the
    /// core's preprocessing path and the bundle's normalisation.
    fn input(
        &self,
        role: Role,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
    ) -> Result<burn::tensor::Tensor<4>, JsError> {
        let (bundle, _, _) = self.loaded(role)?;
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
        let input = self.input(Role::Model, rgba, width, height)?;
        let preprocessed = web_time::Instant::now();
        let (_, model, _) = self.loaded(Role::Model)?;
        let probabilities = predict(model, input).await.map_err(js_error)?;
        let predicted = kdlens::explain::argmax(&probabilities);
        to_js(&PredictOut {
            preprocess_ms: (preprocessed - started).as_secs_f64() * 1e3,
            forward_ms: preprocessed.elapsed().as_secs_f64() * 1e3,
            probabilities,
            predicted,
        })
    }

    /// Explains RGBA pixels (`width × height × 4` bytes) of the image `name` as `request` (the
    /// core's `Request` as a plain object; missing fields take the core's defaults) asks, and
    /// returns the core's `Report` — the same JSON that `kdlens explain` writes, with each map's
    /// `values` as a `Float32Array`. `scan` is the `facts` of `decodeScan` when the pixels come
    /// from a DICOM or NIfTI file (`undefined` otherwise); the report records them.
    /// The progress listener ([`Explainer::set_progress_listener`]) hears SHAP's samples done.
    pub async fn explain(
        &mut self,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
        name: String,
        request: JsValue,
        scan: JsValue,
    ) -> Result<JsValue, JsError> {
        let request = parse_request(request)?;
        let scan = crate::scan::facts_from_js(scan)?;
        let mut report = self
            .report(Role::Model, rgba, [width, height], name, &request, scan)
            .await?;
        let out = report_to_js(&mut report);
        self.last = Some(report);
        out
    }

    /// The teacher's report of the same pixels and request as [`Explainer::explain`], except
    /// that its maps are of the teacher's stage comparable to the model's
    /// ([`kdlens::trust::teacher_request`]).
    #[wasm_bindgen(js_name = explainTeacher)]
    pub async fn explain_teacher(
        &mut self,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
        name: String,
        request: JsValue,
        scan: JsValue,
    ) -> Result<JsValue, JsError> {
        let (_, model, _) = self.loaded(Role::Model)?;
        let (_, teacher, _) = self.loaded(Role::Teacher)?;
        let request = kdlens::trust::teacher_request(&parse_request(request)?, model, teacher)
            .map_err(js_error)?;
        let scan = crate::scan::facts_from_js(scan)?;
        let mut report = self
            .report(Role::Teacher, rgba, [width, height], name, &request, scan)
            .await?;
        let out = report_to_js(&mut report);
        self.last_teacher = Some(report);
        out
    }

    /// How the last explanation agrees with the teacher's of the same image (the core's
    /// `Agreement`: same prediction, KL(teacher ‖ model) in nats, and per method the Spearman
    /// correlation and top-10 % overlap of the two maps at the model's input size).
    pub fn agreement(&self) -> Result<JsValue, JsError> {
        let (Some(model), Some(teacher)) = (&self.last, &self.last_teacher) else {
            return Err(JsError::new(
                "explain an image with both the model and the teacher first",
            ));
        };
        let (bundle, _, _) = self.loaded(Role::Model)?;
        let methods: Vec<Method> = model.maps.iter().map(|m| m.method).collect();
        let size = bundle.manifest().spec.input_size;
        to_js(&Agreement::between(teacher, model, &methods, size))
    }

    /// One model's report of RGBA pixels `[width, height]`: the core's `explain` with the
    /// bundle's preprocessing, SHAP background and the progress listener.
    async fn report(
        &self,
        role: Role,
        rgba: Vec<u8>,
        [width, height]: [usize; 2],
        name: String,
        request: &Request,
        scan: Option<kdlens::image::scan::ScanFacts>,
    ) -> Result<Report, JsError> {
        let started = web_time::Instant::now();
        let input = self.input(role, rgba, width, height)?;
        let preprocess_ms = started.elapsed().as_secs_f64() * 1e3;
        let (bundle, model, _) = self.loaded(role)?;
        let manifest = bundle.manifest();
        let background = self.shap_background(role, request)?;
        let listener = self.progress_listener.clone();
        let tell = |step: &str, done: usize, total: usize| {
            if let Some(callback) = &listener {
                // A progress display that fails must not stop the explanation.
                let _ = callback.call3(
                    &JsValue::NULL,
                    &step.into(),
                    &(done as f64).into(),
                    &(total as f64).into(),
                );
            }
        };
        let context = Context {
            manifest: Some(manifest),
            background,
            progress: Some(Progress(&tell)),
        };
        let mut report = explain(model, input, request, &context)
            .await
            .map_err(js_error)?;
        report.image = Some(ImageSummary {
            name,
            width,
            height,
            scan,
        });
        report.backend = Some(self.backend.name.to_string());
        report
            .timings_ms
            .insert("preprocess".to_string(), preprocess_ms);
        Ok(report)
    }

    /// SHAP's background images for `role`'s model, preprocessed, when `request` asks for SHAP.
    fn shap_background(
        &self,
        role: Role,
        request: &Request,
    ) -> Result<Option<burn::tensor::Tensor<4>>, JsError> {
        if !request.methods().contains(&Method::Shap) {
            return Ok(None);
        }
        let (bundle, _, _) = self.loaded(role)?;
        let manifest = bundle.manifest();
        let images = manifest.shap_background_images().map_err(js_error)?;
        let batch = manifest.preprocessing.to_batch(&images, &self.device);
        batch.map(Some).map_err(js_error)
    }

    /// The audited models, in the audit's order: the teacher first when one is loaded.
    fn audited_roles(&self) -> Vec<(Role, &'static str)> {
        if self.teacher.is_some() {
            vec![(Role::Teacher, "teacher"), (Role::Model, "student")]
        } else {
            vec![(Role::Model, "model")]
        }
    }

    fn plan(&self, request: &Request) -> Result<AuditPlan, JsError> {
        let mut models = Vec::new();
        for (role, name) in self.audited_roles() {
            let (bundle, model, _) = self.loaded(role)?;
            models.push((name, model, bundle.manifest()));
        }
        AuditPlan::new(&models, request, CAM_MIN_SIDE).map_err(js_error)
    }

    /// The plan of an audit of the loaded model — beside the teacher, named `teacher` and
    /// `student`, when one is loaded; named `model` otherwise — explained as `request` asks (its
    /// methods and plans; deletion and insertion curves are always measured): the core's
    /// `AuditPlan`, `{ models: [{ name, cam_layer, input_size }], classes, request }`, with each
    /// model's CAM stage chosen as `kdlens audit` chooses it.
    #[wasm_bindgen(js_name = auditPlan)]
    pub fn audit_plan(&self, request: JsValue) -> Result<JsValue, JsError> {
        to_js(&self.plan(&parse_request(request)?)?)
    }

    /// Audits one image — RGBA pixels (`width × height × 4` bytes) named `name`, of true class
    /// `label` (`undefined` when unknown) — as `plan` (from [`Explainer::audit_plan`]) says:
    /// every model explains it, and the core keeps its `ImageAudit` record (each model's
    /// prediction, deletion and insertion curves and out-of-distribution verdict, the student's
    /// agreement with the teacher). Fails when the loaded models are no longer the plan's.
    #[wasm_bindgen(js_name = auditImage)]
    pub async fn audit_image(
        &self,
        plan: JsValue,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
        name: String,
        label: Option<usize>,
    ) -> Result<JsValue, JsError> {
        let plan: AuditPlan = serde_wasm_bindgen::from_value(plan)
            .map_err(|e| JsError::new(&format!("bad audit plan: {e}")))?;
        if self.plan(&plan.request)? != plan {
            return Err(JsError::new(
                "the model or the teacher changed since this audit began",
            ));
        }
        let image = RgbaImage::new(width, height, rgba).map_err(js_error)?;
        let mut inputs = Vec::new();
        for (role, _) in self.audited_roles() {
            let (bundle, model, _) = self.loaded(role)?;
            let manifest = bundle.manifest();
            inputs.push(AuditInput {
                model,
                input: manifest
                    .preprocessing
                    .to_tensor(&image, &self.device)
                    .map_err(js_error)?,
                context: Context {
                    manifest: Some(manifest),
                    background: self.shap_background(role, &plan.request)?,
                    progress: None,
                },
            });
        }
        let record = kdlens::trust::audit_image(&plan, name, label, inputs)
            .await
            .map_err(js_error)?;
        to_js(&record)
    }

    /// An `ImageData` of `width × height` pixels: the last report's `view` (`feature-map:K` or
    /// a method name such as `grad-cam`) in `colormap` (`viridis` or `jet`) with `opacity`, as
    /// the core's `Report::render` draws it; the teacher's last report when `teacher`.
    pub fn render(
        &self,
        view: String,
        colormap: String,
        opacity: f32,
        height: usize,
        width: usize,
        teacher: bool,
    ) -> Result<web_sys::ImageData, JsError> {
        let report = if teacher {
            &self.last_teacher
        } else {
            &self.last
        }
        .as_ref()
        .ok_or_else(|| JsError::new("nothing explained yet"))?;
        let view: View = view.parse().map_err(js_error)?;
        let colormap: Colormap = colormap.parse().map_err(js_error)?;
        let pixels = report
            .render(&view, [height, width], colormap, opacity)
            .map_err(js_error)?
            .into_pixels();
        web_sys::ImageData::new_with_u8_clamped_array_and_sh(
            wasm_bindgen::Clamped(&pixels),
            width as u32,
            height as u32,
        )
        .map_err(|e| JsError::new(&format!("cannot create the image: {e:?}")))
    }
}

/// The audit of `records` (`auditImage`'s, in any order: they are taken in image-name order)
/// made with `plan`, its bootstrap intervals drawn from `seed`: the core's `Audit` — the
/// `audit.json` that `kdlens audit` writes, less its sanity checks.
#[wasm_bindgen(js_name = auditSummary)]
pub fn audit_summary(plan: JsValue, records: JsValue, seed: u32) -> Result<JsValue, JsError> {
    let plan: AuditPlan = serde_wasm_bindgen::from_value(plan)
        .map_err(|e| JsError::new(&format!("bad audit plan: {e}")))?;
    let records: Vec<ImageAudit> = serde_wasm_bindgen::from_value(records)
        .map_err(|e| JsError::new(&format!("bad audit records: {e}")))?;
    to_js(&Audit::of(&plan, records, &[], u64::from(seed)).map_err(js_error)?)
}
