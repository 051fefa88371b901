//! Confusion matrix and the metrics derived from it.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Counts of (true class, predicted class) pairs: `counts[true][predicted]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// `num_classes × num_classes` counts; rows are true classes, columns predictions.
    pub counts: Vec<Vec<u64>>,
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// TP / (TP + FP); 0 when the class is never predicted.
    pub precision: f64,
    /// TP / (TP + FN); 0 when the class never occurs.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
    /// Number of samples whose true class this is.
    pub support: u64,
}

/// Precision, recall and F1 averaged over classes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    /// Averaged precision.
    pub precision: f64,
    /// Averaged recall.
    pub recall: f64,
    /// Averaged F1 (the average of per-class F1, as scikit-learn reports it).
    pub f1: f64,
}

/// Everything `kdlens evaluate` reports about a classifier on a labelled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Fraction of samples classified correctly.
    pub accuracy: f64,
    /// One entry per class, in class order.
    pub per_class: Vec<ClassMetrics>,
    /// Unweighted mean over classes.
    pub macro_avg: Averages,
    /// Mean over classes weighted by support.
    pub weighted_avg: Averages,
    /// Number of samples.
    pub samples: u64,
}

impl ConfusionMatrix {
    /// An empty matrix for `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        Self {
            counts: vec![vec![0; num_classes]; num_classes],
        }
    }

    /// The matrix of paired true labels and predictions, all in `0..num_classes`.
    pub fn from_predictions(
        labels: &[usize],
        predictions: &[usize],
        num_classes: usize,
    ) -> Result<Self> {
        if labels.len() != predictions.len() {
            return Err(Error::LengthMismatch(format!(
                "{} labels but {} predictions",
                labels.len(),
                predictions.len()
            )));
        }
        let mut matrix = Self::new(num_classes);
        for (&label, &prediction) in labels.iter().zip(predictions) {
            matrix.add(label, prediction)?;
        }
        Ok(matrix)
    }

    /// Counts one (true, predicted) pair.
    pub fn add(&mut self, label: usize, prediction: usize) -> Result<()> {
        let n = self.num_classes();
        for index in [label, prediction] {
            if index >= n {
                return Err(Error::ClassOutOfRange {
                    index,
                    num_classes: n,
                });
            }
        }
        self.counts[label][prediction] += 1;
        Ok(())
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.counts.len()
    }

    /// Total number of samples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Fraction on the diagonal (0 for an empty matrix).
    pub fn accuracy(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            return 0.0;
        }
        let correct: u64 = (0..self.num_classes()).map(|i| self.counts[i][i]).sum();
        correct as f64 / total as f64
    }

    /// Per-class metrics, in class order.
    pub fn per_class(&self) -> Vec<ClassMetrics> {
        let n = self.num_classes();
        (0..n)
            .map(|c| {
                let tp = self.counts[c][c] as f64;
                let predicted: u64 = (0..n).map(|r| self.counts[r][c]).sum();
                let support: u64 = self.counts[c].iter().sum();
                let ratio = |num: f64, den: u64| if den == 0 { 0.0 } else { num / den as f64 };
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics {
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect()
    }

    /// Accuracy, per-class metrics and their macro and weighted averages.
    pub fn report(&self) -> ClassificationReport {
        let per_class = self.per_class();
        let n = per_class.len().max(1) as f64;
        let total = self.total();
        let mean = |f: &dyn Fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / n;
        let weighted = |f: &dyn Fn(&ClassMetrics) -> f64| {
            if total == 0 {
                0.0
            } else {
                per_class
                    .iter()
                    .map(|m| f(m) * m.support as f64)
                    .sum::<f64>()
                    / total as f64
            }
        };
        ClassificationReport {
            accuracy: self.accuracy(),
            macro_avg: Averages {
                precision: mean(&|m| m.precision),
                recall: mean(&|m| m.recall),
                f1: mean(&|m| m.f1),
            },
            weighted_avg: Averages {
                precision: weighted(&|m| m.precision),
                recall: weighted(&|m| m.recall),
                f1: weighted(&|m| m.f1),
            },
            per_class,
            samples: total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-made case with a class (2) that is never predicted.
    /// labels      0 0 0 1 1 2 2 2
    /// predictions 0 0 1 1 1 0 1 1
    fn example() -> ConfusionMatrix {
        ConfusionMatrix::from_predictions(&[0, 0, 0, 1, 1, 2, 2, 2], &[0, 0, 1, 1, 1, 0, 1, 1], 3)
            .unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn counts_rows_true_columns_predicted() {
        assert_eq!(
            example().counts,
            vec![vec![2, 1, 0], vec![0, 2, 0], vec![1, 2, 0]]
        );
        assert!(close(example().accuracy(), 4.0 / 8.0));
    }

    #[test]
    fn per_class_metrics_match_hand_computation() {
        let m = example().per_class();
        // class 0: TP 2, predicted 3, support 3 → P 2/3, R 2/3, F1 2/3
        assert!(close(m[0].precision, 2.0 / 3.0) && close(m[0].recall, 2.0 / 3.0));
        assert!(close(m[0].f1, 2.0 / 3.0));
        // class 1: TP 2, predicted 5, support 2 → P 0.4, R 1, F1 0.8/1.4
        assert!(close(m[1].precision, 0.4) && close(m[1].recall, 1.0));
        assert!(close(m[1].f1, 0.8 / 1.4));
        // class 2: never predicted → P 0 (not NaN), R 0, F1 0
        assert_eq!(
            (m[2].precision, m[2].recall, m[2].f1, m[2].support),
            (0.0, 0.0, 0.0, 3)
        );
    }

    #[test]
    fn macro_and_weighted_averages_match_hand_computation() {
        let r = example().report();
        let f1 = [2.0 / 3.0, 0.8 / 1.4, 0.0];
        assert!(close(r.macro_avg.precision, (2.0 / 3.0 + 0.4) / 3.0));
        assert!(close(r.macro_avg.recall, (2.0 / 3.0 + 1.0) / 3.0));
        assert!(close(r.macro_avg.f1, f1.iter().sum::<f64>() / 3.0));
        assert!(close(
            r.weighted_avg.precision,
            (3.0 * 2.0 / 3.0 + 2.0 * 0.4) / 8.0
        ));
        assert!(close(
            r.weighted_avg.recall,
            (3.0 * 2.0 / 3.0 + 2.0 * 1.0) / 8.0
        ));
        assert!(close(r.weighted_avg.f1, (3.0 * f1[0] + 2.0 * f1[1]) / 8.0));
        assert_eq!(r.samples, 8);
    }

    #[test]
    fn out_of_range_and_mismatched_inputs_are_errors() {
        assert!(ConfusionMatrix::from_predictions(&[0, 3], &[0, 1], 3).is_err());
        assert!(ConfusionMatrix::from_predictions(&[0], &[0, 1], 3).is_err());
    }
}
