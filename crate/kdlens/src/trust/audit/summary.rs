//! The audit's summary of many images: each model's faithfulness per method, each student's
//! agreement with the teacher, and every comparison between them as a paired difference with
//! its bootstrap interval — all read from the images' records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AuditPlan, ImageAudit};
use crate::{
    explain::Method,
    trust::{Agreement, Faithfulness, MapAgreement, PairedDifference, Stats},
};

/// Deletion and insertion of one model and method over the images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodFaithfulness {
    /// Model name.
    pub model: String,
    /// Method.
    pub method: Method,
    /// Deletion area (lower is better).
    pub deletion_auc: Stats,
    /// Insertion area (higher is better).
    pub insertion_auc: Stats,
    /// Mean deletion curve (class probability at each step).
    pub deletion_curve: Vec<f64>,
    /// Mean insertion curve.
    pub insertion_curve: Vec<f64>,
}

/// Teacher–student agreement of one method, overall and per class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodAgreement {
    /// Student name.
    pub student: String,
    /// Method.
    pub method: Method,
    /// Spearman rank correlation of the two maps.
    pub spearman: Stats,
    /// Top-10 % IoU of the two maps.
    pub top_iou: Stats,
    /// The same per class (by class name): Spearman ρ, top-10 % IoU.
    pub per_class: BTreeMap<String, (Stats, Stats)>,
    /// Every image's Spearman correlation (for a histogram).
    pub values: Vec<f64>,
}

/// Prediction agreement of a student with the teacher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionAgreement {
    /// Student name.
    pub student: String,
    /// Share of images where both predict the same class.
    pub same_prediction: f64,
    /// `KL(teacher ‖ student)` in nats.
    pub kl_divergence: Stats,
}

/// What a comparison measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// Spearman ρ of a student's map with the teacher's (higher: more alike).
    AgreementSpearman,
    /// Top-10 % IoU of a student's map with the teacher's (higher: more alike).
    AgreementTopIou,
    /// Deletion area (lower: more faithful).
    DeletionAuc,
    /// Insertion area (higher: more faithful).
    InsertionAuc,
}

impl Measure {
    /// Whether a higher value is the better one.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Measure::DeletionAuc)
    }

    /// A short name for tables.
    pub fn label(self) -> &'static str {
        match self {
            Measure::AgreementSpearman => "Spearman ρ with the teacher",
            Measure::AgreementTopIou => "top-10 % IoU with the teacher",
            Measure::DeletionAuc => "deletion AUC",
            Measure::InsertionAuc => "insertion AUC",
        }
    }
}

/// `first − second` on one measure and method, paired over the images that have both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The measure.
    pub measure: Measure,
    /// The method whose maps were measured.
    pub method: Method,
    /// The model whose values are subtracted from.
    pub first: String,
    /// The model whose values are subtracted.
    pub second: String,
    /// The difference and its interval; `None` when no image has both values.
    pub difference: Option<PairedDifference>,
    /// What the interval supports, in words: which model is better on the measure, or "no clear
    /// difference".
    pub reading: String,
}

impl Comparison {
    /// `first − second` on `measure` and `method`, with its reading.
    pub fn new(
        measure: Measure,
        method: Method,
        first: String,
        second: String,
        difference: Option<PairedDifference>,
    ) -> Self {
        let reading = reading(measure, &first, &second, difference);
        Self {
            measure,
            method,
            first,
            second,
            difference,
            reading,
        }
    }
}

/// What `difference` (`first − second` on `measure`) supports, in words.
fn reading(
    measure: Measure,
    first: &str,
    second: &str,
    difference: Option<PairedDifference>,
) -> String {
    let Some(difference) = difference.filter(PairedDifference::is_clear) else {
        return "no clear difference".into();
    };
    let first_better = (difference.mean > 0.0) == measure.higher_is_better();
    let (better, worse) = if first_better {
        (first, second)
    } else {
        (second, first)
    };
    match measure {
        Measure::AgreementSpearman | Measure::AgreementTopIou => {
            format!("{better} agrees with the teacher more than {worse}")
        }
        Measure::DeletionAuc | Measure::InsertionAuc => {
            format!("{better} is more faithful than {worse}")
        }
    }
}

/// The summary of an audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditSummary {
    /// Deletion and insertion per model and method.
    pub faithfulness: Vec<MethodFaithfulness>,
    /// Map agreement per student and method.
    pub agreement: Vec<MethodAgreement>,
    /// Prediction agreement per student.
    pub predictions: Vec<PredictionAgreement>,
    /// Every student against every other on agreement with the teacher, and every student
    /// against the teacher on faithfulness, per method.
    pub comparisons: Vec<Comparison>,
}

impl AuditSummary {
    /// The summary of `records`, in their order, made with `plan`: its first model is the
    /// teacher, the others its students; the bootstrap draws from `seed`. Every record must hold
    /// one entry per model of the plan ([`super::Audit::of`] checks).
    pub(super) fn of(plan: &AuditPlan, records: &[ImageAudit], seed: u64) -> Self {
        let methods = plan.request.methods();
        let names: Vec<&str> = plan.models.iter().map(|m| m.name.as_str()).collect();
        let students = names.len().saturating_sub(1);
        // agreements[s][image]: student s (model s + 1) with the teacher.
        let agreements: Vec<Vec<&Agreement>> = (0..students)
            .map(|s| records.iter().map(|r| &r.agreements[s]).collect())
            .collect();
        let classes_of: Vec<usize> = records.iter().map(|r| r.class).collect();
        Self {
            faithfulness: names
                .iter()
                .enumerate()
                .flat_map(|(k, name)| {
                    methods
                        .iter()
                        .map(move |&method| faithfulness_of(name, records, k, method))
                })
                .collect(),
            agreement: agreements
                .iter()
                .zip(&names[1..])
                .flat_map(|(a, name)| {
                    methods
                        .iter()
                        .map(|&method| agreement_of(name, a, &classes_of, &plan.classes, method))
                })
                .collect(),
            predictions: agreements
                .iter()
                .zip(names.iter().skip(1))
                .map(|(a, name)| predictions_of(name, a))
                .collect(),
            comparisons: comparisons(&names, records, &agreements, &methods, seed),
        }
    }
}

/// Per image: `pick` of `method`'s map agreement (`None` where the method has none).
fn map_values(
    agreements: &[&Agreement],
    method: Method,
    pick: fn(&MapAgreement) -> Option<f64>,
) -> Vec<Option<f64>> {
    agreements
        .iter()
        .map(|a| {
            a.maps
                .iter()
                .find(|(m, _)| *m == method)
                .and_then(|(_, g)| pick(g))
        })
        .collect()
}

fn spearman_of(g: &MapAgreement) -> Option<f64> {
    g.spearman
}

fn top_iou_of(g: &MapAgreement) -> Option<f64> {
    g.top_iou
}

/// Model `k`'s deletion and insertion curves of `method`, per image (`None` where absent).
fn curves_of(
    records: &[ImageAudit],
    k: usize,
    method: Method,
) -> impl Iterator<Item = Option<&Faithfulness>> {
    records
        .iter()
        .map(move |r| r.models[k].faithfulness.iter().find(|f| f.method == method))
}

/// Per image: model `k`'s deletion (or insertion) area of `method`'s map.
fn auc_values(
    records: &[ImageAudit],
    k: usize,
    method: Method,
    deletion: bool,
) -> Vec<Option<f64>> {
    curves_of(records, k, method)
        .map(|f| {
            f.map(|f| {
                f64::from(if deletion {
                    f.deletion.auc
                } else {
                    f.insertion.auc
                })
            })
        })
        .collect()
}

fn present(values: &[Option<f64>]) -> Vec<f64> {
    values.iter().flatten().copied().collect()
}

fn faithfulness_of(
    name: &str,
    records: &[ImageAudit],
    k: usize,
    method: Method,
) -> MethodFaithfulness {
    let found: Vec<&Faithfulness> = curves_of(records, k, method).flatten().collect();
    MethodFaithfulness {
        model: name.to_string(),
        method,
        deletion_auc: Stats::of(&present(&auc_values(records, k, method, true))),
        insertion_auc: Stats::of(&present(&auc_values(records, k, method, false))),
        deletion_curve: mean_curve(found.iter().map(|f| f.deletion.probabilities.as_slice())),
        insertion_curve: mean_curve(found.iter().map(|f| f.insertion.probabilities.as_slice())),
    }
}

fn agreement_of(
    student: &str,
    agreements: &[&Agreement],
    classes_of: &[usize],
    classes: &[String],
    method: Method,
) -> MethodAgreement {
    let (rho, iou) = (
        map_values(agreements, method, spearman_of),
        map_values(agreements, method, top_iou_of),
    );
    let of_class = |values: &[Option<f64>], class: usize| -> Vec<f64> {
        values
            .iter()
            .zip(classes_of)
            .filter(|(_, c)| **c == class)
            .filter_map(|(v, _)| *v)
            .collect()
    };
    MethodAgreement {
        student: student.to_string(),
        method,
        spearman: Stats::of(&present(&rho)),
        top_iou: Stats::of(&present(&iou)),
        per_class: classes
            .iter()
            .enumerate()
            .map(|(c, name)| {
                (
                    name.clone(),
                    (Stats::of(&of_class(&rho, c)), Stats::of(&of_class(&iou, c))),
                )
            })
            .collect(),
        values: present(&rho),
    }
}

fn predictions_of(student: &str, agreements: &[&Agreement]) -> PredictionAgreement {
    let n = agreements.len().max(1) as f64;
    PredictionAgreement {
        student: student.to_string(),
        same_prediction: agreements.iter().filter(|a| a.same_prediction).count() as f64 / n,
        kl_divergence: Stats::of(
            &agreements
                .iter()
                .map(|a| a.kl_divergence)
                .collect::<Vec<_>>(),
        ),
    }
}

/// Students pairwise on agreement (`agreements[s]` is model `s + 1`'s), then each student
/// against the teacher (model 0) on deletion and insertion.
fn comparisons(
    names: &[&str],
    records: &[ImageAudit],
    agreements: &[Vec<&Agreement>],
    methods: &[Method],
    seed: u64,
) -> Vec<Comparison> {
    let mut out = Vec::new();
    let comparison = |measure, method, first: usize, second: usize, difference| {
        Comparison::new(
            measure,
            method,
            names[first].to_string(),
            names[second].to_string(),
            difference,
        )
    };
    for i in 0..agreements.len() {
        for j in i + 1..agreements.len() {
            for &method in methods {
                for (measure, pick) in [
                    (
                        Measure::AgreementSpearman,
                        spearman_of as fn(&MapAgreement) -> _,
                    ),
                    (Measure::AgreementTopIou, top_iou_of),
                ] {
                    let difference = PairedDifference::of(
                        &map_values(&agreements[i], method, pick),
                        &map_values(&agreements[j], method, pick),
                        seed,
                    );
                    out.push(comparison(measure, method, i + 1, j + 1, difference));
                }
            }
        }
    }
    for student in 1..names.len() {
        for &method in methods {
            for (measure, deletion) in
                [(Measure::DeletionAuc, true), (Measure::InsertionAuc, false)]
            {
                let difference = PairedDifference::of(
                    &auc_values(records, student, method, deletion),
                    &auc_values(records, 0, method, deletion),
                    seed,
                );
                out.push(comparison(measure, method, student, 0, difference));
            }
        }
    }
    out
}

/// The pointwise mean of equally long curves (empty without curves).
pub fn mean_curve<'a>(curves: impl Iterator<Item = &'a [f32]>) -> Vec<f64> {
    let mut sum: Vec<f64> = Vec::new();
    let mut n = 0;
    for curve in curves {
        if sum.is_empty() {
            sum = vec![0.0; curve.len()];
        }
        sum.iter_mut().zip(curve).for_each(|(s, &v)| *s += v as f64);
        n += 1;
    }
    sum.into_iter().map(|s| s / n.max(1) as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_curve_averages_pointwise() {
        let a = [1.0f32, 0.5];
        let b = [0.0f32, 0.5];
        assert_eq!(
            mean_curve([a.as_slice(), b.as_slice()].into_iter()),
            vec![0.5, 0.5]
        );
    }

    #[test]
    fn a_reading_names_the_better_model_in_the_measures_direction() {
        let comparison = |measure, mean: f64, interval| {
            let difference = PairedDifference {
                mean,
                interval,
                n: 10,
            };
            Comparison::new(
                measure,
                Method::GradCam,
                "kd".into(),
                "labels".into(),
                Some(difference),
            )
        };
        assert_eq!(
            comparison(Measure::AgreementSpearman, 0.1, [0.05, 0.15]).reading,
            "kd agrees with the teacher more than labels"
        );
        assert_eq!(
            comparison(Measure::DeletionAuc, 0.1, [0.05, 0.15]).reading,
            "labels is more faithful than kd",
            "a higher deletion area is worse"
        );
        assert_eq!(
            comparison(Measure::InsertionAuc, -0.1, [-0.2, 0.01]).reading,
            "no clear difference"
        );
    }
}
