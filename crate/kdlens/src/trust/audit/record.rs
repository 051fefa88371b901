//! What the audit keeps of one image: each model's faithfulness, prediction and
//! out-of-distribution verdict, and each other model's agreement with the first. The CLI and the
//! page make these records image by image and build the summary from them, never from the
//! reports, whose maps they need not keep.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::AuditPlan;
use crate::{
    Error, Result,
    explain::{Context, Report, Target, explain},
    model::LayeredClassifier,
    trust::{Agreement, Faithfulness, InDistribution},
};

/// One model's facts about one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelImage {
    /// The class the model predicts.
    pub predicted: usize,
    /// Deletion and insertion curves of each audited method's map.
    pub faithfulness: Vec<Faithfulness>,
    /// Whether the image looks like the model's training data (when its bundle can tell).
    pub in_distribution: Option<InDistribution>,
    /// Milliseconds the explanation took.
    pub explain_ms: f64,
}

impl ModelImage {
    /// What the audit keeps of `report`.
    pub fn of(report: &Report) -> Self {
        Self {
            predicted: report.predicted,
            faithfulness: report.faithfulness.clone(),
            in_distribution: report.in_distribution,
            explain_ms: report.timings_ms.get("total").copied().unwrap_or(0.0),
        }
    }
}

/// One audited image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageAudit {
    /// The image's name (its path, for the CLI; its path in the chosen folder, for the page).
    pub image: String,
    /// Its true class, when known.
    pub label: Option<usize>,
    /// The class every model's maps explain: the label, or else the first model's prediction.
    pub class: usize,
    /// Per model of the plan, the first (the teacher) first.
    pub models: Vec<ModelImage>,
    /// Per model after the first: how its explanation agrees with the first model's.
    pub agreements: Vec<Agreement>,
}

impl ImageAudit {
    /// The record of image `image` (true class `label`) from `reports`, one per model of `plan`
    /// in its order, all explaining the same class.
    pub fn of(
        plan: &AuditPlan,
        image: String,
        label: Option<usize>,
        reports: &[Report],
    ) -> Result<Self> {
        let Some(first) = reports.first() else {
            return Err(Error::InvalidRequest(
                "an audited image needs a report".into(),
            ));
        };
        if reports.len() != plan.models.len() {
            return Err(Error::LengthMismatch(format!(
                "{image}: {} reports for {} audited models",
                reports.len(),
                plan.models.len()
            )));
        }
        if let Some(other) = reports.iter().find(|r| r.class != first.class) {
            return Err(Error::InvalidRequest(format!(
                "{image}: the models explain different classes ({} and {})",
                first.class, other.class
            )));
        }
        let methods = plan.request.methods();
        Ok(Self {
            image,
            label,
            class: first.class,
            models: reports.iter().map(ModelImage::of).collect(),
            agreements: reports
                .iter()
                .zip(&plan.models)
                .skip(1)
                .map(|(report, model)| {
                    Agreement::between(first, report, &methods, model.input_size)
                })
                .collect(),
        })
    }
}

/// One model's input to [`audit_image`]: the model, the image as its input tensor `[1, 3, H, W]`
/// (through its own preprocessing), and what its explanations need (manifest, SHAP background).
pub struct AuditInput<'a, M> {
    /// The model.
    pub model: &'a M,
    /// The image, preprocessed for this model.
    pub input: Tensor<4>,
    /// Its manifest, SHAP background and progress listener.
    pub context: Context<'a>,
}

/// Explains one image with every model of `plan`, in its order, and keeps what the audit needs.
/// Each model explains `label` when it is known; otherwise the first model explains its own
/// prediction and the others that class, so that their maps can be compared.
pub async fn audit_image<M: LayeredClassifier>(
    plan: &AuditPlan,
    image: String,
    label: Option<usize>,
    inputs: Vec<AuditInput<'_, M>>,
) -> Result<ImageAudit> {
    if inputs.len() != plan.models.len() {
        return Err(Error::LengthMismatch(format!(
            "{image}: {} models given for {} audited",
            inputs.len(),
            plan.models.len()
        )));
    }
    let mut reports: Vec<Report> = Vec::with_capacity(inputs.len());
    for (k, part) in inputs.into_iter().enumerate() {
        let target = match (label, reports.first()) {
            (Some(class), _) => Target::Class(class),
            (None, Some(first)) => Target::Class(first.class),
            (None, None) => Target::Predicted,
        };
        let request = plan.request_for(k, target);
        reports.push(explain(part.model, part.input, &request, &part.context).await?);
    }
    ImageAudit::of(plan, image, label, &reports)
}

/// One row of `audit.json`'s `per_image`: one model's facts about one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageResult {
    /// Image name.
    pub image: String,
    /// True class, when known.
    pub label: Option<usize>,
    /// Model name.
    pub model: String,
    /// Predicted class.
    pub predicted: usize,
    /// Deletion and insertion areas per method.
    pub auc: std::collections::BTreeMap<crate::explain::Method, (f32, f32)>,
    /// The out-of-distribution verdict.
    pub in_distribution: Option<InDistribution>,
    /// Explanation time, ms.
    pub explain_ms: f64,
}

impl ImageResult {
    /// The row of `model` (named `name`) in `record`.
    pub fn of(record: &ImageAudit, name: &str, model: &ModelImage) -> Self {
        Self {
            image: record.image.clone(),
            label: record.label,
            model: name.to_string(),
            predicted: model.predicted,
            auc: model
                .faithfulness
                .iter()
                .map(|f| (f.method, (f.deletion.auc, f.insertion.auc)))
                .collect(),
            in_distribution: model.in_distribution,
            explain_ms: model.explain_ms,
        }
    }
}
