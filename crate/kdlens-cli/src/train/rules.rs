//! The rules that govern a run between epochs: keep the best validation epoch, multiply the
//! learning rate by `lr_factor` after `patience` epochs without improvement, stop after
//! `early_stop` such epochs.

use super::{EpochRecord, LoopState, TrainConfig};

/// What an epoch's validation loss means for the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// The best validation loss so far: its weights are kept.
    Improved,
    /// No improvement; `lr_now` is the reduced learning rate when the plateau rule fired.
    Stalled {
        /// The new learning rate, if it was reduced after this epoch.
        lr_now: Option<f64>,
    },
}

impl LoopState {
    /// The state before the first epoch.
    pub fn fresh(lr: f64) -> Self {
        Self {
            epoch: 0,
            lr,
            best_val_loss: f64::INFINITY,
            best_epoch: 0,
            plateau_wait: 0,
            since_best: 0,
            history: Vec::new(),
        }
    }

    /// Whether the early-stop rule ends the run before its next epoch.
    pub fn stops_early(&self, config: &TrainConfig) -> bool {
        config.early_stop.is_some_and(|n| self.since_best >= n)
    }

    /// Records a finished epoch and applies the rules to its validation loss.
    pub fn conclude(&mut self, record: EpochRecord, config: &TrainConfig) -> Verdict {
        let val_loss = record.val_loss;
        self.epoch = record.epoch;
        self.history.push(record);
        if val_loss < self.best_val_loss {
            self.best_val_loss = val_loss;
            self.best_epoch = self.epoch;
            self.since_best = 0;
            self.plateau_wait = 0;
            return Verdict::Improved;
        }
        self.since_best += 1;
        self.plateau_wait += 1;
        if self.plateau_wait < config.patience {
            return Verdict::Stalled { lr_now: None };
        }
        self.lr *= config.lr_factor;
        self.plateau_wait = 0;
        Verdict::Stalled {
            lr_now: Some(self.lr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(epoch: usize, val_loss: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            lr: 0.0,
            train_loss: 1.0,
            train_accuracy: 0.5,
            val_loss,
            val_accuracy: 0.5,
            seconds: 1.0,
            images_per_second: 1.0,
        }
    }

    /// Hand-worked: patience 2, factor 0.1, early stop 3, losses 1.0, 0.8, 0.9, 0.85, 0.7, 0.75,
    /// 0.8, 0.9, 0.95 (the run stops before the ninth).
    #[test]
    fn plateau_early_stop_and_best_epoch_follow_the_losses() {
        let config = TrainConfig {
            patience: 2,
            lr_factor: 0.1,
            early_stop: Some(3),
            ..TrainConfig::paper(0)
        };
        let mut state = LoopState::fresh(1e-3);
        let losses = [1.0, 0.8, 0.9, 0.85, 0.7, 0.75, 0.8, 0.9, 0.95];
        let mut verdicts = Vec::new();
        for (k, loss) in losses.iter().enumerate() {
            if state.stops_early(&config) {
                break;
            }
            verdicts.push(state.conclude(epoch(k + 1, *loss), &config));
        }
        let stalled = |lr_now| Verdict::Stalled { lr_now };
        assert_eq!(
            verdicts,
            [
                Verdict::Improved,
                Verdict::Improved,
                stalled(None),
                stalled(Some(1e-3 * 0.1)),
                Verdict::Improved,
                stalled(None),
                stalled(Some(1e-3 * 0.1 * 0.1)),
                stalled(None),
            ]
        );
        // Epochs 6, 7 and 8 did not improve on epoch 5: the run stops before a ninth.
        assert!(state.stops_early(&config));
        assert_eq!((state.epoch, state.best_epoch), (8, 5));
        assert_eq!(state.best_val_loss, 0.7);
        assert_eq!(state.history.len(), 8);
        assert_eq!(state.lr, 1e-3 * 0.1 * 0.1);
    }

    #[test]
    fn without_early_stop_a_run_never_stops_early() {
        let config = TrainConfig::paper(0);
        let mut state = LoopState::fresh(1e-3);
        for k in 1..=20 {
            state.conclude(epoch(k, 1.0 + k as f64), &config);
        }
        assert!(!state.stops_early(&config));
        assert_eq!(state.best_epoch, 1);
    }
}
