//! Classification metrics: confusion matrix, accuracy, per-class / macro / weighted
//! precision, recall and F1, and calibration. (Parameter and compute counts live with the
//! models, in [`ModelCost`](crate::model::ModelCost).)

mod calibration;
mod confusion;

pub use calibration::expected_calibration_error;
pub use confusion::{Averages, ClassMetrics, ClassificationReport, ConfusionMatrix};
