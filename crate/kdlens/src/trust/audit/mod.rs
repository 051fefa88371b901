//! The audit: a folder of images, each explained by a teacher and its students (or by one model
//! alone) for its true class, and the answer to the paper's questions over all of them — are the
//! maps faithful, does each student explain like its teacher — with every comparison's
//! uncertainty.
//!
//! An [`AuditPlan`] fixes the models, their CAM stages and the request; [`audit_image`] turns
//! one image into an [`ImageAudit`] record; [`Audit::of`] summarises the records. The CLI
//! (`kdlens audit`, which adds the sanity check) and the page make the same records and the same
//! [`Audit`]. [`PooledAudit`] pools the audits of one recipe trained with several seeds.

mod pool;
mod record;
mod stages;
mod summary;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use pool::{AuditRecords, PooledAudit, RunDifferences};
pub use record::{AuditInput, ImageAudit, ImageResult, ModelImage, audit_image};
pub use stages::{CAM_MIN_SIDE, cam_stages};
pub use summary::{
    AuditSummary, Comparison, Measure, MethodAgreement, MethodFaithfulness, PredictionAgreement,
    mean_curve,
};

use super::{InDistribution, Stats};
use crate::{
    Error, Result,
    bundle::Manifest,
    explain::{Method, Request, Target},
    model::LayeredClassifier,
};

/// The methods an audit explains with unless told otherwise: the CAM family and integrated
/// gradients (SHAP, a forward and backward pass per sample, only when asked for).
pub const DEFAULT_METHODS: [Method; 5] = [
    Method::GradCam,
    Method::GradCamPlusPlus,
    Method::HiResCam,
    Method::LayerCam,
    Method::IntegratedGradients,
];
/// Test images `kdlens audit` samples unless told otherwise.
pub const DEFAULT_IMAGES: usize = 100;
/// Images `kdlens audit` runs the sanity check (cascading randomisation) on unless told otherwise.
pub const DEFAULT_SANITY_IMAGES: usize = 8;
/// SHAP samples per image in `kdlens audit` unless told otherwise: fewer than a single
/// explanation's default, since every image of the sample pays them.
pub const DEFAULT_SHAP_SAMPLES: usize = 50;

/// One audited model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditedModel {
    /// Its name in the audit (`teacher`, or a student's).
    pub name: String,
    /// The stage its CAM maps are computed on ([`cam_stages`]).
    pub cam_layer: String,
    /// Its input size `[height, width]`: maps compared with the teacher's are compared at it.
    pub input_size: [usize; 2],
}

/// What an audit asks of every image: the models, the first the teacher, and the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPlan {
    /// The audited models, the teacher first.
    pub models: Vec<AuditedModel>,
    /// Their class names (one task: the same for all).
    pub classes: Vec<String>,
    /// The methods and their plans, faithfulness curves included; the stage and the class are
    /// set per model and image ([`AuditPlan::request_for`]).
    pub request: Request,
}

impl AuditPlan {
    /// The plan for `models` (name, model, manifest; the teacher first) explained as `request`
    /// asks — its methods and plans; deletion and insertion curves are added when it has none —
    /// with CAM maps on the stages [`cam_stages`] picks at `min_side` positions per side.
    pub fn new<M: LayeredClassifier>(
        models: &[(&str, &M, &Manifest)],
        request: &Request,
        min_side: usize,
    ) -> Result<Self> {
        let Some(((_, teacher, manifest), students)) = models.split_first() else {
            return Err(Error::InvalidRequest("an audit needs a model".into()));
        };
        let classes = manifest.classes.clone();
        for (k, (name, _, other)) in models.iter().enumerate() {
            if other.classes != classes {
                return Err(Error::InvalidRequest(format!(
                    "{name} has classes {:?} but {} has {classes:?}: an audit compares models of one task",
                    other.classes, models[0].0
                )));
            }
            if models[..k].iter().any(|(earlier, _, _)| earlier == name) {
                return Err(Error::InvalidRequest(format!(
                    "two audited models are named {name}"
                )));
            }
        }
        let request = Request {
            layer: None,
            target: Target::Predicted,
            faithfulness: Some(request.faithfulness.clone().unwrap_or_default()),
            ..request.clone()
        };
        request.validate(classes.len())?;
        let students: Vec<&M> = students.iter().map(|(_, model, _)| *model).collect();
        let stages = cam_stages(*teacher, &students, min_side)?;
        Ok(Self {
            models: models
                .iter()
                .zip(stages)
                .map(|((name, _, manifest), cam_layer)| AuditedModel {
                    name: name.to_string(),
                    cam_layer,
                    input_size: manifest.spec.input_size,
                })
                .collect(),
            classes,
            request,
        })
    }

    /// The request for model `k`: the plan's, on the model's CAM stage, for `target`.
    pub fn request_for(&self, k: usize, target: Target) -> Request {
        Request {
            layer: self.models.get(k).map(|m| m.cam_layer.clone()),
            target,
            ..self.request.clone()
        }
    }
}

/// Out-of-distribution flags of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodRate {
    /// Model name.
    pub model: String,
    /// Audited images flagged as unlike the training data, of those with a verdict.
    pub flagged_test: (usize, usize),
    /// Images known to be unlike it (the CLI's `--ood`) flagged, of those with a verdict.
    pub flagged_ood: (usize, usize),
}

/// Flagged and judged among `verdicts` (`None`: the model's bundle cannot tell).
fn flagged(verdicts: impl Iterator<Item = Option<InDistribution>>) -> (usize, usize) {
    verdicts.flatten().fold((0, 0), |(f, n), v| {
        (f + usize::from(!v.in_distribution), n + 1)
    })
}

/// Everything an audit finds (`audit.json`; the CLI adds its sanity checks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    /// Class names.
    pub classes: Vec<String>,
    /// Images audited.
    pub images: usize,
    /// The request every image was explained with (class: its label; stage: the model's).
    pub request: Request,
    /// The stage of each model's CAM maps.
    pub cam_layers: BTreeMap<String, String>,
    /// Faithfulness, agreement and the comparisons between the models.
    #[serde(flatten)]
    pub summary: AuditSummary,
    /// Out-of-distribution rates per model.
    pub ood: Vec<OodRate>,
    /// Explanation time per image and model, ms.
    pub explain_ms: BTreeMap<String, Stats>,
    /// Per image and model.
    pub per_image: Vec<ImageResult>,
}

impl Audit {
    /// The audit of `records`, made with `plan`. They are taken in image-name order, whatever
    /// order they come in, so that the same images give the same intervals in the CLI and the
    /// page. `outside[k]`, when given, holds model `k`'s verdicts on images known to be unlike
    /// its training data; the bootstrap draws from `seed`.
    pub fn of(
        plan: &AuditPlan,
        mut records: Vec<ImageAudit>,
        outside: &[Vec<Option<InDistribution>>],
        seed: u64,
    ) -> Result<Self> {
        let models = plan.models.len();
        for record in &records {
            if record.models.len() != models || record.agreements.len() + 1 != models {
                return Err(Error::LengthMismatch(format!(
                    "the record of {} holds {} models and {} agreements, but {models} models are audited",
                    record.image,
                    record.models.len(),
                    record.agreements.len()
                )));
            }
            if record.class >= plan.classes.len() {
                return Err(Error::InvalidRequest(format!(
                    "the record of {} explains class {}, but there are {} classes",
                    record.image,
                    record.class,
                    plan.classes.len()
                )));
            }
        }
        records.sort_by(|a, b| a.image.cmp(&b.image));
        let summary = AuditSummary::of(plan, &records, seed);
        let names = plan.models.iter().map(|m| m.name.as_str());
        Ok(Self {
            classes: plan.classes.clone(),
            images: records.len(),
            request: plan.request.clone(),
            cam_layers: plan
                .models
                .iter()
                .map(|m| (m.name.clone(), m.cam_layer.clone()))
                .collect(),
            summary,
            ood: names
                .clone()
                .enumerate()
                .map(|(k, name)| OodRate {
                    model: name.to_string(),
                    flagged_test: flagged(records.iter().map(|r| r.models[k].in_distribution)),
                    flagged_ood: flagged(outside.get(k).into_iter().flatten().copied()),
                })
                .collect(),
            explain_ms: names
                .clone()
                .enumerate()
                .map(|(k, name)| {
                    let times: Vec<f64> = records.iter().map(|r| r.models[k].explain_ms).collect();
                    (name.to_string(), Stats::of(&times))
                })
                .collect(),
            per_image: names
                .enumerate()
                .flat_map(|(k, name)| {
                    records
                        .iter()
                        .map(move |r| ImageResult::of(r, name, &r.models[k]))
                })
                .collect(),
        })
    }
}
