//! Explanation operations, all sharing one vocabulary: a *layer* (a named stage of the model),
//! a *target* class and an output size, and all returning [`Heatmap`]s.
//!
//! - [`feature_maps`]: KD-FMV, the channel mean of every stage's activation.
//! - [`grad_cam`]: Grad-CAM for any stage and any class.
//! - [`expected_gradients`]: SHAP values by expected gradients (`shap.GradientExplainer`).
//! - [`explain`]: prediction, every feature map and Grad-CAM from a single forward pass.
//! - [`Colormap`] and [`overlay`]: heatmaps to RGBA pixels.
//!
//! Models must be in inference mode (`model.valid()`, which is what loading a bundle returns):
//! BatchNorm then uses its running statistics and dropout is off. Inputs are `[1, 3, H, W]`.

mod colormap;
mod explanation;
mod feature_maps;
mod gradcam;
mod heatmap;
mod request;
mod shap;

pub use colormap::{Colormap, overlay, signed_overlay};
pub use explanation::{Explanation, Timings, explain, predict, softmax};
pub use feature_maps::{FeatureMaps, feature_maps};
pub use gradcam::{GradCam, argmax, grad_cam};
pub use heatmap::Heatmap;
pub use request::{CamScore, ExplainOptions, Target};
pub use shap::{Attribution, ExpectedGradients, expected_gradients};
