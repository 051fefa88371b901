//! Calibration: does a predicted confidence of 0.9 mean right nine times in ten?

use crate::{Error, Result};

/// Expected calibration error with `bins` equal-width confidence bins: the support-weighted mean
/// of |accuracy − mean confidence| over the bins, where confidence is the top probability.
///
/// `probabilities` holds one row of `num_classes` probabilities per sample, row-major.
pub fn expected_calibration_error(
    probabilities: &[f32],
    labels: &[usize],
    num_classes: usize,
    bins: usize,
) -> Result<f64> {
    if num_classes == 0 || bins == 0 || probabilities.len() != labels.len() * num_classes {
        return Err(Error::LengthMismatch(format!(
            "{} probabilities for {} labels of {num_classes} classes in {bins} bins",
            probabilities.len(),
            labels.len()
        )));
    }
    let mut confidence = vec![0.0f64; bins];
    let mut correct = vec![0.0f64; bins];
    let mut count = vec![0u64; bins];
    for (row, &label) in probabilities.chunks_exact(num_classes).zip(labels) {
        let (best, &p) =
            row.iter().enumerate().fold(
                (0, &f32::NEG_INFINITY),
                |acc, x| if x.1 > acc.1 { x } else { acc },
            );
        let bin = ((p as f64 * bins as f64) as usize).min(bins - 1);
        confidence[bin] += p as f64;
        correct[bin] += (best == label) as u8 as f64;
        count[bin] += 1;
    }
    let total = labels.len().max(1) as f64;
    Ok((0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (correct[b] - confidence[b]).abs() / total)
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfectly_calibrated_predictions_have_zero_error() {
        // two samples at confidence 1.0, both right
        let ece = expected_calibration_error(&[1.0, 0.0, 0.0, 1.0], &[0, 1], 2, 10).unwrap();
        assert!(ece.abs() < 1e-12);
    }

    #[test]
    fn overconfident_wrong_predictions_count_fully() {
        // confidence 0.9 and wrong for both samples → error 0.9
        let ece = expected_calibration_error(&[0.9, 0.1, 0.9, 0.1], &[1, 1], 2, 10).unwrap();
        assert!((ece - 0.9).abs() < 1e-6, "{ece}");
    }
}
