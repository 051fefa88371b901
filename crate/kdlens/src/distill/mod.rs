//! Knowledge distillation (Hinton et al., 2015) as the paper intends it.
//!
//! `L = α · CE(y, z_s) + (1 − α) · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))`
//!
//! α weights the hard (label) term; the KL term is summed over classes and averaged over the
//! batch (PyTorch's `reduction="batchmean"`), and the T² factor keeps its gradients on the scale
//! of the hard term. α = 1 is plain cross-entropy training — the label-only baseline.

mod loss;

pub use loss::{DistillConfig, batch_loss, cross_entropy, kd_loss};
