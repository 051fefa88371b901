//! What a model is, independent of its weights: architecture, class count and input size.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{Classifier, DenseNet, DenseNetConfig, FiveLayerStudent, Kd8Student, ModelCost};
use crate::Result;

/// The network families kdlens knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Architecture {
    /// The paper's five-layer student ([`FiveLayerStudent`]).
    FiveLayer,
    /// The eight-convolution student of the authors' code ([`Kd8Student`]).
    Kd8,
    /// A DenseNet teacher ([`DenseNet`]); DenseNet-121 is [`DenseNetConfig::densenet121`].
    DenseNet(DenseNetConfig),
}

impl Architecture {
    /// DenseNet-121, the paper's teacher.
    pub fn densenet121() -> Self {
        Architecture::DenseNet(DenseNetConfig::densenet121())
    }

    /// Short human-readable name (`five-layer`, `kd8`, `densenet121`, `densenet(g8,2-2-2-2)`).
    pub fn name(&self) -> String {
        match self {
            Architecture::FiveLayer => "five-layer".into(),
            Architecture::Kd8 => "kd8".into(),
            Architecture::DenseNet(config) if *config == DenseNetConfig::densenet121() => {
                "densenet121".into()
            }
            Architecture::DenseNet(config) => format!(
                "densenet(g{},{})",
                config.growth_rate,
                config
                    .block_config
                    .iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join("-")
            ),
        }
    }
}

/// Everything needed to build a model before its weights are loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The network family.
    pub architecture: Architecture,
    /// Number of output classes (≥ 2).
    pub num_classes: usize,
    /// Input `[height, width]` in pixels; the input always has 3 channels.
    pub input_size: [usize; 2],
}

impl ModelSpec {
    /// A spec, validated: the class count must be at least 2 and the input large enough for the
    /// architecture's down-sampling.
    pub fn new(
        architecture: Architecture,
        num_classes: usize,
        input_size: [usize; 2],
    ) -> Result<Self> {
        let spec = Self {
            architecture,
            num_classes,
            input_size,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the spec without building anything; see [`ModelSpec::new`].
    pub fn validate(&self) -> Result<()> {
        if self.num_classes < 2 {
            return Err(crate::Error::InvalidConfig(format!(
                "a classifier needs at least 2 classes, got {}",
                self.num_classes
            )));
        }
        match &self.architecture {
            Architecture::FiveLayer => FiveLayerStudent::check_input(self.input_size),
            Architecture::Kd8 => Kd8Student::check_input(self.input_size),
            Architecture::DenseNet(config) => config.check(self.input_size),
        }
    }

    /// Builds the model with freshly initialised weights on `device` (seed the device first for
    /// reproducible weights).
    pub fn init(&self, device: &Device) -> Result<Classifier> {
        self.validate()?;
        Ok(match &self.architecture {
            Architecture::FiveLayer => Classifier::FiveLayer(FiveLayerStudent::new(
                self.num_classes,
                self.input_size,
                device,
            )),
            Architecture::Kd8 => {
                Classifier::Kd8(Kd8Student::new(self.num_classes, self.input_size, device))
            }
            Architecture::DenseNet(config) => Classifier::DenseNet(DenseNet::new(
                config,
                self.num_classes,
                self.input_size,
                device,
            )),
        })
    }

    /// Parameters and multiply-accumulates per layer at this spec's input size, computed from
    /// the architecture (no weights needed).
    pub fn cost(&self) -> ModelCost {
        match &self.architecture {
            Architecture::FiveLayer => FiveLayerStudent::cost(self.num_classes, self.input_size),
            Architecture::Kd8 => Kd8Student::cost(self.num_classes, self.input_size),
            Architecture::DenseNet(config) => config.cost(self.num_classes, self.input_size),
        }
    }
}
