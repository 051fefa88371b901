//! Optimisation settings of a training run.

use serde::{Deserialize, Serialize};

use crate::data::augment::Augmentation;

/// How a network is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Number of epochs.
    pub epochs: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Initial Adam learning rate.
    pub lr: f64,
    /// Epochs without a better validation loss before the learning rate is multiplied by
    /// `lr_factor`.
    pub patience: usize,
    /// Learning-rate reduction factor on a plateau.
    pub lr_factor: f64,
    /// Stop after this many epochs without a better validation loss.
    pub early_stop: Option<usize>,
    /// Training-time augmentation.
    pub augmentation: Augmentation,
    /// Seed of initialisation, shuffling, augmentation and dropout.
    pub seed: u64,
    /// Model replicas trained data-parallel on slices of every batch: one per CPU core on
    /// `flex`, one per GPU on `wgpu`.
    #[serde(default = "one")]
    pub replicas: usize,
}

fn one() -> usize {
    1
}

/// The default replica count: one per core of this machine on the CPU, one GPU on `wgpu`.
pub fn default_replicas(device: crate::cli::DeviceArg) -> usize {
    match device {
        crate::cli::DeviceArg::Flex => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        crate::cli::DeviceArg::Wgpu => 1,
    }
}

impl TrainConfig {
    /// The authors' settings: 100 epochs, batch 16, Adam 1e-4, ×0.1 after 6 stale epochs,
    /// their augmentation.
    pub fn paper(seed: u64) -> Self {
        Self {
            epochs: 100,
            batch_size: 16,
            lr: 1e-4,
            patience: 6,
            lr_factor: 0.1,
            early_stop: None,
            augmentation: Augmentation::default(),
            seed,
            replicas: 1,
        }
    }

    /// Checks that the numbers make sense.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.epochs > 0, "--epochs must be at least 1");
        anyhow::ensure!(self.batch_size > 0, "--batch-size must be at least 1");
        anyhow::ensure!(
            self.lr.is_finite() && self.lr > 0.0,
            "--lr must be a positive number, got {}",
            self.lr
        );
        anyhow::ensure!(self.patience > 0, "--patience must be at least 1");
        anyhow::ensure!(self.replicas > 0, "--replicas must be at least 1");
        anyhow::ensure!(
            self.lr_factor > 0.0 && self.lr_factor <= 1.0,
            "the learning-rate factor must lie in (0, 1], got {}",
            self.lr_factor
        );
        Ok(())
    }
}
