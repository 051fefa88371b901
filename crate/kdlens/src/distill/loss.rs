//! The distillation loss.

use burn::tensor::{Int, Tensor, activation::log_softmax};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The two knobs of distillation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    /// Weight of the hard-label cross-entropy, in `[0, 1]`.
    pub alpha: f64,
    /// Softmax temperature, `> 0`.
    pub temperature: f64,
}

impl DistillConfig {
    /// A validated configuration.
    pub fn new(alpha: f64, temperature: f64) -> Result<Self> {
        let config = Self { alpha, temperature };
        config.validate()?;
        Ok(config)
    }

    /// Checks `0 ≤ α ≤ 1` and `T > 0` (both finite).
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(Error::InvalidConfig(format!(
                "alpha weights the label loss and must lie in [0, 1], got {}",
                self.alpha
            )));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::InvalidConfig(format!(
                "temperature must be a positive number, got {}",
                self.temperature
            )));
        }
        Ok(())
    }
}

/// The distillation loss for a batch, a scalar tensor `[1]`.
///
/// - `student_logits`, `teacher_logits`: `[batch, classes]` (logits, not probabilities; the
///   teacher's carry no gradient).
/// - `labels`: `[batch]` class indices.
///
/// When `alpha == 1` the soft term is skipped entirely (and the teacher logits are not read), so
/// the baseline costs nothing extra.
pub fn kd_loss(
    student_logits: Tensor<2>,
    teacher_logits: Tensor<2>,
    labels: Tensor<1, Int>,
    config: DistillConfig,
) -> Tensor<1> {
    let [batch, _] = student_logits.dims();
    let hard = cross_entropy(student_logits.clone(), labels);
    if config.alpha >= 1.0 {
        return hard;
    }
    let t = config.temperature;
    let log_q_student = log_softmax(student_logits / t, 1);
    let log_q_teacher = log_softmax(teacher_logits.detach() / t, 1);
    let q_teacher = log_q_teacher.clone().exp();
    let kl = (q_teacher * (log_q_teacher - log_q_student)).sum() / batch as f64;
    hard * config.alpha + kl * ((1.0 - config.alpha) * t * t)
}

/// The mean cross-entropy `[1]` of `logits` `[batch, classes]` against `labels` `[batch]`:
/// label-only training's loss and distillation's hard term.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    log_softmax(logits, 1)
        .gather(1, labels.reshape([batch, 1]))
        .mean()
        .neg()
}

/// A training batch's loss `[1]`: [`cross_entropy`] with the labels when `distill` is `None`,
/// otherwise [`kd_loss`] against `teacher_logits` `[batch, classes]`.
///
/// Errors when distillation is asked for without the teacher's logits (training would
/// otherwise quietly learn from the labels alone) or with logits of another shape.
pub fn batch_loss(
    logits: Tensor<2>,
    labels: Tensor<1, Int>,
    distill: Option<DistillConfig>,
    teacher_logits: Option<Tensor<2>>,
) -> Result<Tensor<1>> {
    let Some(config) = distill else {
        return Ok(cross_entropy(logits, labels));
    };
    let teacher = teacher_logits.ok_or_else(|| {
        Error::InvalidRequest("a distillation step needs the teacher's logits".into())
    })?;
    if teacher.dims() != logits.dims() {
        return Err(Error::InvalidRequest(format!(
            "the teacher's logits {:?} and the student's {:?} differ in shape",
            teacher.dims(),
            logits.dims()
        )));
    }
    Ok(kd_loss(logits, teacher, labels, config))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Int, Tensor, TensorData};

    use super::*;

    fn batch() -> (Tensor<2>, Tensor<2>, Tensor<1, Int>) {
        let device = Device::flex();
        let student = Tensor::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 0.5, -1.0, 2.0], [2, 3]),
            &device,
        );
        let teacher = Tensor::from_data(
            TensorData::new(vec![3.0f32, 2.0, 1.0, 0.0, 0.0, 4.0], [2, 3]),
            &device,
        );
        let labels = Tensor::from_data(TensorData::new(vec![2i64, 0], [2]), &device);
        (student, teacher, labels)
    }

    fn value(t: Tensor<1>) -> f64 {
        t.into_data().try_to_vec::<f32>().unwrap()[0] as f64
    }

    // Hand-computed in double precision:
    // CE (mean over the batch) = 1.0744586305507688
    // KL(softmax(t/2) ‖ softmax(s/2)) summed over classes, mean over the batch = 0.2111002161773152
    const CE: f64 = 1.0744586305507688;
    const KL: f64 = 0.2111002161773152;

    #[test]
    fn loss_matches_hand_computed_value() {
        let (s, t, y) = batch();
        let loss = value(kd_loss(s, t, y, DistillConfig::new(0.7, 2.0).unwrap()));
        let expected = 0.7 * CE + 0.3 * 4.0 * KL;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
    }

    #[test]
    fn alpha_one_is_plain_cross_entropy() {
        let (s, t, y) = batch();
        let loss = value(kd_loss(
            s.clone(),
            t,
            y.clone(),
            DistillConfig::new(1.0, 5.0).unwrap(),
        ));
        let ce = value(
            burn::nn::loss::CrossEntropyLossConfig::new()
                .init(&s.device())
                .forward(s, y),
        );
        assert!(
            (loss - CE).abs() < 1e-6 && (loss - ce).abs() < 1e-6,
            "{loss} {ce}"
        );
    }

    #[test]
    fn alpha_zero_is_the_scaled_soft_term_only() {
        let (s, t, y) = batch();
        let loss = value(kd_loss(s, t, y, DistillConfig::new(0.0, 2.0).unwrap()));
        assert!((loss - 4.0 * KL).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn identical_logits_have_no_soft_loss() {
        let (s, _, y) = batch();
        let loss = value(kd_loss(
            s.clone(),
            s,
            y,
            DistillConfig::new(0.0, 3.0).unwrap(),
        ));
        assert!(loss.abs() < 1e-6, "{loss}");
    }

    #[test]
    fn a_batch_learns_from_the_labels_or_from_the_teacher_it_is_given() {
        let (s, t, y) = batch();
        let labels_only = value(batch_loss(s.clone(), y.clone(), None, None).unwrap());
        assert!((labels_only - CE).abs() < 1e-6, "{labels_only}");
        let config = DistillConfig::new(0.7, 2.0).unwrap();
        let distilled = value(batch_loss(s.clone(), y.clone(), Some(config), Some(t)).unwrap());
        assert!(
            (distilled - (0.7 * CE + 0.3 * 4.0 * KL)).abs() < 1e-6,
            "{distilled}"
        );
        let missing = batch_loss(s.clone(), y.clone(), Some(config), None).unwrap_err();
        assert!(
            missing.to_string().contains("teacher's logits"),
            "{missing}"
        );
        let narrow = s.clone().slice([0..2, 0..2]);
        assert!(batch_loss(s, y, Some(config), Some(narrow)).is_err());
    }

    #[test]
    fn out_of_range_settings_are_rejected() {
        assert!(DistillConfig::new(1.5, 2.0).is_err());
        assert!(DistillConfig::new(0.5, 0.0).is_err());
        assert!(DistillConfig::new(0.5, f64::NAN).is_err());
    }
}
