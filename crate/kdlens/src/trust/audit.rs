//! The audit's summary of many images: each model's faithfulness per method, each student's
//! agreement with the teacher, and every comparison between them as a paired difference with
//! its bootstrap interval.
//!
//! The reports come in per model, image by image in the same order, the teacher's first; every
//! image was explained with the same request for its true class.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Agreement, MapAgreement, PairedDifference, Stats, teacher_request};
use crate::{
    Result,
    explain::{Method, Report, Request},
    model::LayeredClassifier,
};

/// The fewest positions per side of the stage the audit's CAM maps are computed on: a small
/// input's last stage can be 1×1, where every CAM is a constant with no ranking to compare.
pub const CAM_MIN_SIDE: usize = 4;

/// The CAM stage of each audited model, the teacher's first: each student's deepest stage with
/// at least `min_side` positions per side, and the teacher's chosen as the page chooses it beside
/// a model ([`teacher_request`]): comparable to the first student's stage.
pub fn cam_stages<M: LayeredClassifier>(
    teacher: &M,
    students: &[&M],
    min_side: usize,
) -> Result<Vec<String>> {
    let student_stages: Vec<String> = students
        .iter()
        .map(|s| s.layers()[s.deepest_layer_with_side(min_side)].name.clone())
        .collect();
    let teacher_stage = match (students.first(), student_stages.first()) {
        (Some(student), Some(stage)) => {
            let asked = Request {
                layer: Some(stage.clone()),
                ..Request::default()
            };
            teacher_request(&asked, *student, teacher)?.layer
        }
        _ => None,
    }
    .unwrap_or_else(|| {
        teacher.layers()[teacher.deepest_layer_with_side(min_side)]
            .name
            .clone()
    });
    Ok(std::iter::once(teacher_stage)
        .chain(student_stages)
        .collect())
}

/// One model's reports, one per audited image.
#[derive(Debug, Clone, Copy)]
pub struct ModelReports<'a> {
    /// The model's name in the audit (`teacher`, or a student's).
    pub name: &'a str,
    /// Its reports, in image order.
    pub reports: &'a [Report],
}

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
}

impl Comparison {
    /// What the interval supports, in words: which model is better on the measure, or "no clear
    /// difference".
    pub fn reading(&self) -> String {
        let Some(difference) = self.difference.filter(PairedDifference::is_clear) else {
            return "no clear difference".into();
        };
        let first_better = (difference.mean > 0.0) == self.measure.higher_is_better();
        let (better, worse) = if first_better {
            (&self.first, &self.second)
        } else {
            (&self.second, &self.first)
        };
        match self.measure {
            Measure::AgreementSpearman | Measure::AgreementTopIou => {
                format!("{better} agrees with the teacher more than {worse}")
            }
            Measure::DeletionAuc | Measure::InsertionAuc => {
                format!("{better} is more faithful than {worse}")
            }
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
    /// The summary of `models` (the teacher first) explained with `methods`; maps are compared
    /// at `size` `[height, width]`, `classes` names the labels of the reports' targets, and
    /// the bootstrap draws from `seed`.
    pub fn of(
        models: &[ModelReports<'_>],
        methods: &[Method],
        classes: &[String],
        size: [usize; 2],
        seed: u64,
    ) -> Self {
        let agreements: Vec<Vec<Agreement>> = match models.split_first() {
            Some((teacher, students)) => students
                .iter()
                .map(|s| {
                    teacher
                        .reports
                        .iter()
                        .zip(s.reports)
                        .map(|(t, s)| Agreement::between(t, s, methods, size))
                        .collect()
                })
                .collect(),
            None => Vec::new(),
        };
        let students = models.get(1..).unwrap_or_default();
        let classes_of: Vec<usize> = models
            .first()
            .map(|t| t.reports.iter().map(|r| r.class).collect())
            .unwrap_or_default();
        Self {
            faithfulness: models
                .iter()
                .flat_map(|m| {
                    methods
                        .iter()
                        .map(move |&method| faithfulness_of(m, method))
                })
                .collect(),
            agreement: students
                .iter()
                .zip(&agreements)
                .flat_map(|(s, a)| {
                    methods
                        .iter()
                        .map(|&method| agreement_of(s.name, a, &classes_of, classes, method))
                })
                .collect(),
            predictions: students
                .iter()
                .zip(&agreements)
                .map(|(s, a)| predictions_of(s.name, a))
                .collect(),
            comparisons: comparisons(models, &agreements, methods, seed),
        }
    }
}

/// Per image: `pick` of `method`'s map agreement (`None` where the method has none).
fn map_values(
    agreements: &[Agreement],
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

/// Per image: the deletion (or insertion) area of `method`'s map.
fn auc_values(reports: &[Report], method: Method, deletion: bool) -> Vec<Option<f64>> {
    reports
        .iter()
        .map(|r| {
            r.faithfulness_of(method).map(|f| {
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

fn faithfulness_of(model: &ModelReports<'_>, method: Method) -> MethodFaithfulness {
    let found: Vec<_> = model
        .reports
        .iter()
        .filter_map(|r| r.faithfulness_of(method))
        .collect();
    MethodFaithfulness {
        model: model.name.to_string(),
        method,
        deletion_auc: Stats::of(&present(&auc_values(model.reports, method, true))),
        insertion_auc: Stats::of(&present(&auc_values(model.reports, method, false))),
        deletion_curve: mean_curve(found.iter().map(|f| f.deletion.probabilities.as_slice())),
        insertion_curve: mean_curve(found.iter().map(|f| f.insertion.probabilities.as_slice())),
    }
}

fn agreement_of(
    student: &str,
    agreements: &[Agreement],
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

fn predictions_of(student: &str, agreements: &[Agreement]) -> PredictionAgreement {
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

/// Students pairwise on agreement (`agreements[k]` is student `k + 1`'s), then each student
/// against the teacher on deletion and insertion.
fn comparisons(
    models: &[ModelReports<'_>],
    agreements: &[Vec<Agreement>],
    methods: &[Method],
    seed: u64,
) -> Vec<Comparison> {
    let students = models.get(1..).unwrap_or_default();
    let mut out = Vec::new();
    for (i, first) in students.iter().enumerate() {
        for (j, second) in students.iter().enumerate().skip(i + 1) {
            for &method in methods {
                for (measure, pick) in [
                    (
                        Measure::AgreementSpearman,
                        spearman_of as fn(&MapAgreement) -> _,
                    ),
                    (Measure::AgreementTopIou, top_iou_of),
                ] {
                    out.push(Comparison {
                        measure,
                        method,
                        first: first.name.to_string(),
                        second: second.name.to_string(),
                        difference: PairedDifference::of(
                            &map_values(&agreements[i], method, pick),
                            &map_values(&agreements[j], method, pick),
                            seed,
                        ),
                    });
                }
            }
        }
    }
    if let Some((teacher, students)) = models.split_first() {
        for student in students {
            for &method in methods {
                for (measure, deletion) in
                    [(Measure::DeletionAuc, true), (Measure::InsertionAuc, false)]
                {
                    out.push(Comparison {
                        measure,
                        method,
                        first: student.name.to_string(),
                        second: teacher.name.to_string(),
                        difference: PairedDifference::of(
                            &auc_values(student.reports, method, deletion),
                            &auc_values(teacher.reports, method, deletion),
                            seed,
                        ),
                    });
                }
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
        let comparison = |measure, mean: f64, interval| Comparison {
            measure,
            method: Method::GradCam,
            first: "kd".into(),
            second: "labels".into(),
            difference: Some(PairedDifference {
                mean,
                interval,
                n: 10,
            }),
        };
        assert_eq!(
            comparison(Measure::AgreementSpearman, 0.1, [0.05, 0.15]).reading(),
            "kd agrees with the teacher more than labels"
        );
        assert_eq!(
            comparison(Measure::DeletionAuc, 0.1, [0.05, 0.15]).reading(),
            "labels is more faithful than kd",
            "a higher deletion area is worse"
        );
        assert_eq!(
            comparison(Measure::InsertionAuc, -0.1, [-0.2, 0.01]).reading(),
            "no clear difference"
        );
    }
}
