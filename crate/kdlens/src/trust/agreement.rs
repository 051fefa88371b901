//! How alike two maps are, and how alike two models' predictions are.

use serde::{Deserialize, Serialize};

use super::pixel_order;
use crate::{
    Result,
    explain::{Heatmap, Method, Report, Request},
    model::LayeredClassifier,
};

/// The share of pixels whose overlap [`top_fraction_iou`] measures by default: the top 10 %.
pub const TOP_FRACTION: f64 = 0.1;

/// `request` as it is asked of the `teacher` shown beside `model`, so that their maps compare:
/// the same request, with the maps on the teacher's stage comparable to the model's CAM stage
/// (`request.layer`, or the model's default): the deepest at least as fine
/// ([`LayeredClassifier::layer_comparable_to`]). A stage name of the model means nothing to
/// another architecture, and a teacher's last stage can be 1×1 where the model's is 2×2.
/// Fails if `request.layer` names no stage of `model`.
pub fn teacher_request<M, T>(request: &Request, model: &M, teacher: &T) -> Result<Request>
where
    M: LayeredClassifier + ?Sized,
    T: LayeredClassifier + ?Sized,
{
    let model_stage = model.cam_layer(request.layer.as_deref())?;
    let stage = teacher.layer_comparable_to(model.layers()[model_stage].size);
    Ok(Request {
        layer: Some(teacher.layers()[stage].name.clone()),
        ..request.clone()
    })
}

/// Agreement of two maps of the same image, both resized to one size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MapAgreement {
    /// Spearman rank correlation in `[−1, 1]`; `None` when a map is constant (no ranking).
    pub spearman: Option<f64>,
    /// Intersection over union of the top-[`TOP_FRACTION`] pixels in `[0, 1]`; `None` when a
    /// map is constant.
    pub top_iou: Option<f64>,
}

/// How a student agrees with its teacher on one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// Both models predict the same class.
    pub same_prediction: bool,
    /// `KL(teacher ‖ student)` of the class probabilities, in nats.
    pub kl_divergence: f64,
    /// Per method present in both reports: the agreement of the two maps at the input size.
    pub maps: Vec<(Method, MapAgreement)>,
}

impl Agreement {
    /// How `student`'s report of an image agrees with `teacher`'s of the same image: the same
    /// predicted class, `KL(teacher ‖ student)`, and for each of `methods` in both reports the
    /// agreement of the two maps resized to `size` `[height, width]`.
    pub fn between(
        teacher: &Report,
        student: &Report,
        methods: &[Method],
        size: [usize; 2],
    ) -> Self {
        let maps = methods
            .iter()
            .filter_map(|&m| {
                let (t, s) = (teacher.map(m)?, student.map(m)?);
                Some((m, compare_maps(&t.heatmap(), &s.heatmap(), size)))
            })
            .collect();
        Self {
            same_prediction: teacher.predicted == student.predicted,
            kl_divergence: kl_divergence(&teacher.probabilities, &student.probabilities),
            maps,
        }
    }
}

/// Ranks `1..=n` with ties given their average rank.
fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        let average = (start + end) as f64 / 2.0 + 1.0;
        for &i in &order[start..=end] {
            ranks[i] = average;
        }
        start = end + 1;
    }
    ranks
}

/// Pearson correlation, `None` when either side has no variance.
fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        va += (x - ma) * (x - ma);
        vb += (y - mb) * (y - mb);
    }
    (va > 0.0 && vb > 0.0).then(|| (cov / (va * vb).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman rank correlation of two equally long value lists (ties averaged, as
/// `scipy.stats.spearmanr`); `None` when either is constant or they differ in length.
pub fn spearman(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    pearson(&ranks(a), &ranks(b))
}

/// The indices of the `k` largest values, ranked as deletion and insertion rank them.
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut order = pixel_order(values);
    order.truncate(k);
    order.sort_unstable();
    order
}

/// Intersection over union of the top `⌈fraction · n⌉` positions of two maps; `None` when a
/// map is constant (its top positions would be arbitrary) or the lengths differ.
pub fn top_fraction_iou(a: &[f32], b: &[f32], fraction: f64) -> Option<f64> {
    let constant = |v: &[f32]| v.iter().all(|&x| x == v[0]);
    if a.len() != b.len() || a.is_empty() || constant(a) || constant(b) {
        return None;
    }
    let k = ((fraction * a.len() as f64).ceil() as usize).clamp(1, a.len());
    let (ta, tb) = (top_k(a, k), top_k(b, k));
    let intersection = ta.iter().filter(|i| tb.binary_search(i).is_ok()).count();
    Some(intersection as f64 / (2 * k - intersection) as f64)
}

/// Rank correlation and top-10 % IoU of two maps after bilinear resizing both to `size`
/// `[height, width]`.
pub fn compare_maps(a: &Heatmap, b: &Heatmap, size: [usize; 2]) -> MapAgreement {
    let (a, b) = (a.resized(size), b.resized(size));
    MapAgreement {
        spearman: spearman(&a.values, &b.values),
        top_iou: top_fraction_iou(&a.values, &b.values, TOP_FRACTION),
    }
}

/// `KL(p ‖ q) = Σ p_i ln(p_i / q_i)` in nats, with `q` floored at 1e-12 so that a class the
/// student rules out entirely gives a large, finite number.
pub fn kl_divergence(p: &[f32], q: &[f32]) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(p, _)| **p > 0.0)
        .map(|(&p, &q)| p as f64 * (p as f64 / (q as f64).max(1e-12)).ln())
        .sum::<f64>()
        .max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_maps_agree_perfectly() {
        let a = [0.1, 0.9, 0.3, 0.5, 0.7, 0.2, 0.0, 0.4, 0.8, 0.6];
        assert_eq!(spearman(&a, &a), Some(1.0));
        assert_eq!(top_fraction_iou(&a, &a, 0.1), Some(1.0));
        let map = Heatmap::new("l", [2, 5], a.to_vec());
        let agreement = compare_maps(&map, &map, [4, 10]);
        assert!((agreement.spearman.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(agreement.top_iou, Some(1.0));
    }

    #[test]
    fn top_pixels_rank_the_two_zeros_as_equal() {
        // Top 2 of `a`: 2 and then 0 (the first of the tied zeros), as of `b`; with +0 above −0
        // `a`'s would be 2 and 1.
        let a = [-0.0, 0.0, 1.0, -1.0];
        let b = [0.5, 0.0, 1.0, -1.0];
        assert_eq!(top_k(&a, 2), vec![0, 2]);
        assert_eq!(top_fraction_iou(&a, &b, 0.5), Some(1.0));
    }

    #[test]
    fn reversed_ranking_correlates_minus_one_and_shares_no_top_pixel() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [50.0, 40.0, 30.0, 20.0, 10.0];
        assert_eq!(spearman(&a, &b), Some(-1.0));
        assert_eq!(top_fraction_iou(&a, &b, 0.2), Some(0.0));
    }

    #[test]
    fn spearman_averages_tied_ranks_like_scipy() {
        // scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]).statistic = 0.9486832980505138
        let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((rho - 0.948_683_298_050_513_8).abs() < 1e-12, "{rho}");
    }

    #[test]
    fn top_iou_counts_the_overlap_of_the_top_sets() {
        // top 2 of a = {0, 1}; of b = {1, 2}: IoU = 1 / 3
        let a = [9.0, 8.0, 1.0, 0.0];
        let b = [1.0, 8.0, 9.0, 0.0];
        assert!((top_fraction_iou(&a, &b, 0.5).unwrap() - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn a_constant_map_has_no_ranking() {
        let flat = [0.0; 6];
        let other = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(spearman(&flat, &other), None);
        assert_eq!(top_fraction_iou(&flat, &other, 0.1), None);
    }

    #[test]
    fn kl_divergence_is_zero_for_equal_and_positive_for_different_distributions() {
        assert_eq!(kl_divergence(&[0.2, 0.8], &[0.2, 0.8]), 0.0);
        // 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75)
        let expected = 0.5 * (2.0f64).ln() + 0.5 * (0.5f64 / 0.75).ln();
        assert!((kl_divergence(&[0.5, 0.5], &[0.25, 0.75]) - expected).abs() < 1e-7);
        assert!(kl_divergence(&[1.0, 0.0], &[0.0, 1.0]) > 20.0);
    }
}
