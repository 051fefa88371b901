//! Whether an explanation can be trusted, as numbers:
//!
//! - [`faithfulness`]: deletion and insertion curves (Petsiuk et al., "RISE", 2018) — does the
//!   class probability fall fast when the pixels a map ranks first are removed, and rise fast
//!   when they are revealed first?
//! - [`agreement`]: does the student explain the image the way its teacher does — rank
//!   correlation and top-10 % overlap of their maps, same prediction, KL divergence?
//! - [`sanity`]: cascading model randomisation (Adebayo et al., 2018) — a map that does not
//!   change when the model's weights are destroyed does not explain the model.
//! - [`audit`]: all of that over many images — records made image by image, then one summary —
//!   and every comparison it draws with its uncertainty.
//! - [`stats`]: a measure over many images as mean ± sd, and the paired difference of two
//!   measures with its bootstrap interval.
//! - [`ood`]: does the input look like the images the model was trained on (Mahalanobis
//!   distance of its pooled features to the training classes)?

pub mod agreement;
pub mod audit;
pub mod faithfulness;
pub mod ood;
mod order;
pub mod sanity;
pub mod stats;

pub use agreement::{
    Agreement, MapAgreement, TOP_FRACTION, compare_maps, kl_divergence, spearman, teacher_request,
    top_fraction_iou,
};
pub use audit::{
    Audit, AuditInput, AuditPlan, AuditRecords, AuditSummary, AuditedModel, CAM_MIN_SIDE,
    Comparison, ImageAudit, Measure, OodRate, PooledAudit, audit_image, cam_stages,
};
pub use faithfulness::{Curve, Faithfulness, auc, deletion_insertion};
pub use ood::{
    InDistribution, OodReference, PooledBatch, pooled_batch, pooled_features, reference_sample,
};
pub use order::pixel_order;
pub use sanity::{
    SANITY_THRESHOLD, SanityCheck, SanityStep, parameter_groups, randomized, sanity_check,
};
pub use stats::{PairedDifference, Stats};
