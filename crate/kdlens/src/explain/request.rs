//! What an explanation is asked for.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which class an explanation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The class with the highest logit for this input.
    #[default]
    Predicted,
    /// A fixed class index.
    Class(usize),
}

impl Target {
    /// Checks a fixed class index against the model's class count.
    pub fn validate(&self, num_classes: usize) -> Result<()> {
        match *self {
            Target::Class(index) if index >= num_classes => {
                Err(Error::ClassOutOfRange { index, num_classes })
            }
            _ => Ok(()),
        }
    }
}

/// The scalar whose gradient Grad-CAM follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CamScore {
    /// The class logit (pre-softmax; the usual Grad-CAM definition).
    #[default]
    Logit,
    /// The class's softmax probability (what the authors' code used).
    Probability,
}

/// A request for [`explain`](super::explain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ExplainOptions {
    /// Grad-CAM stage by name; `None` is the model's last stage.
    pub layer: Option<String>,
    /// Grad-CAM class.
    pub target: Target,
    /// Grad-CAM score.
    pub score: CamScore,
}
