//! Explanation methods, all sharing one vocabulary — a [`Request`] (methods, stage, class,
//! score, plans) answered by one [`Report`] — and all returning raw maps that
//! [`Report::render`] draws.
//!
//! - [`feature_maps`]: KD-FMV, the channel mean of every stage's activation.
//! - [`class_activation_maps`]: Grad-CAM, Grad-CAM++, HiResCAM and LayerCAM for any stage and
//!   class, from one backward pass.
//! - [`integrated_gradients`]: integrated gradients against a black, blurred or noise baseline.
//! - [`expected_gradients`]: SHAP values by expected gradients (`shap.GradientExplainer`).
//! - [`explain`]: all of the above that a request asks for, with faithfulness curves and the
//!   out-of-distribution verdict, as a [`Report`].
//!
//! Models must be in inference mode (`model.valid()`, which is what loading a bundle returns):
//! BatchNorm then uses its running statistics and dropout is off. Inputs are `[1, 3, H, W]`.

mod cam;
mod colormap;
mod explanation;
mod feature_maps;
mod heatmap;
mod integrated;
mod report;
mod request;
mod shap;

pub use cam::{Cam, cam_map, class_activation_maps};
pub use colormap::{Colormap, composite, diverging_rgb};
pub use explanation::{Context, Progress, argmax, assess_input, explain, predict, softmax};
pub use feature_maps::{FeatureMaps, feature_maps};
pub use heatmap::Heatmap;
pub use integrated::{baseline, black_image, integrated_gradients, quadrature};
pub use report::{
    Completeness, DEFAULT_OPACITY, ImageSummary, LayerMap, MethodMap, ModelSummary, REPORT_VERSION,
    Report, View,
};
pub use request::{
    Baseline, CamScore, DEFAULT_BLUR_SIGMA, FaithfulnessPlan, IntegratedGradientsPlan, Method,
    Quadrature, Request, ShapPlan, Target, option_name, parse_name,
};
pub use shap::{
    Attribution, ExpectedGradients, expected_gradients, expected_gradients_with_progress,
};
