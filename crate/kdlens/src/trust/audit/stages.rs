//! Which stage each audited model's CAM maps are computed on: one rule, the page's.

use super::super::teacher_request;
use crate::{Result, explain::Request, model::LayeredClassifier};

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
