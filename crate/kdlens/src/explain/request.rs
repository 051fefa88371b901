//! What an explanation is asked for: one vocabulary for the CLI, the browser and the report.
//!
//! Every option enum is named once, by its serde name; [`std::str::FromStr`] parses the same
//! names (`"grad-cam++"`, `"probability"`, `"viridis"` …), so the CLI's flags, the page's
//! controls and the saved JSON cannot drift apart.

use std::str::FromStr;

use serde::{
    Deserialize, Serialize,
    de::{DeserializeOwned, IntoDeserializer, value::Error as ValueError},
};

use crate::{Error, Result};

/// Parses one of the core's option names (the serde name of a unit variant), with an error that
/// lists the valid names.
pub fn parse_name<T: DeserializeOwned>(text: &str) -> Result<T> {
    T::deserialize(IntoDeserializer::<ValueError>::into_deserializer(text))
        .map_err(|e| Error::InvalidRequest(format!("`{text}`: {e}")))
}

/// The serde name of an option value (a unit variant), the name [`parse_name`] parses; empty
/// for a value that does not serialise to a string.
pub fn option_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// `Display` by the serde name, so that a default shown or parsed anywhere is the core's.
macro_rules! display_by_serde_name {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&option_name(self))
            }
        }
    )*};
}

macro_rules! from_str_by_serde_name {
    ($($t:ty),*) => {$(
        impl FromStr for $t {
            type Err = Error;
            fn from_str(text: &str) -> Result<Self> {
                parse_name(text)
            }
        }
    )*};
}

/// An explanation method. Feature-map means (KD-FMV) come with every report and are not listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Method {
    /// Grad-CAM (Selvaraju et al., 2017): channel weights = spatial mean of the gradient.
    #[serde(rename = "grad-cam")]
    GradCam,
    /// Grad-CAM++ (Chattopadhay et al., 2018), in pytorch-grad-cam's closed form.
    #[serde(rename = "grad-cam++")]
    GradCamPlusPlus,
    /// HiResCAM (Draelos & Carin, 2020): the element-wise product of gradient and activation.
    #[serde(rename = "hires-cam")]
    HiResCam,
    /// LayerCAM (Jiang et al., 2021): the positive gradient times the activation, per position.
    #[serde(rename = "layer-cam")]
    LayerCam,
    /// Integrated gradients (Sundararajan et al., 2017) against a baseline image.
    #[serde(rename = "integrated-gradients")]
    IntegratedGradients,
    /// SHAP values by expected gradients (`shap.GradientExplainer`) against a background set.
    #[serde(rename = "shap")]
    Shap,
}

impl Method {
    /// Every method, in the order reports list them.
    pub const ALL: [Method; 6] = [
        Method::GradCam,
        Method::GradCamPlusPlus,
        Method::HiResCam,
        Method::LayerCam,
        Method::IntegratedGradients,
        Method::Shap,
    ];

    /// The methods computed from one stage's activation and gradient (one backward pass).
    pub const CAMS: [Method; 4] = [
        Method::GradCam,
        Method::GradCamPlusPlus,
        Method::HiResCam,
        Method::LayerCam,
    ];

    /// Whether the method is one of the class-activation-map family.
    pub fn is_cam(self) -> bool {
        Self::CAMS.contains(&self)
    }

    /// Whether the method's values are signed input attributions (integrated gradients,
    /// SHAP) rather than non-negative maps of a stage.
    pub fn is_signed(self) -> bool {
        !self.is_cam()
    }

    /// The serde name, e.g. `grad-cam++`.
    pub fn name(self) -> &'static str {
        match self {
            Method::GradCam => "grad-cam",
            Method::GradCamPlusPlus => "grad-cam++",
            Method::HiResCam => "hires-cam",
            Method::LayerCam => "layer-cam",
            Method::IntegratedGradients => "integrated-gradients",
            Method::Shap => "shap",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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

    /// The class index this target stands for, given the image's logits.
    pub fn resolve(self, logits: &[f32]) -> usize {
        match self {
            Target::Class(c) => c,
            Target::Predicted => super::argmax(logits),
        }
    }
}

/// The scalar whose gradient the CAM methods follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CamScore {
    /// The class logit (pre-softmax; the usual Grad-CAM definition).
    #[default]
    Logit,
    /// The class's softmax probability (what the authors' code used).
    Probability,
}

/// The reference image integrated gradients starts its path from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// A black image (pixel value 0, normalised like any input).
    #[default]
    Black,
    /// The input blurred by a Gaussian (Sturmfels et al., 2020): removes detail, keeps colour.
    Blur,
    /// Uniform noise pixels (0–255), drawn from the plan's seed.
    Noise,
}

/// How the path integral of integrated gradients is approximated (captum's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Quadrature {
    /// Gauss–Legendre nodes and weights on `[0, 1]` (captum's default, `gausslegendre`).
    #[default]
    #[serde(rename = "gausslegendre")]
    GaussLegendre,
    /// The trapezoid rule on equally spaced points including both ends (`riemann_trapezoid`).
    #[serde(rename = "riemann_trapezoid")]
    Trapezoid,
}

from_str_by_serde_name!(Method, CamScore, Baseline, Quadrature);
display_by_serde_name!(CamScore, Baseline, Quadrature);

/// Integrated-gradients settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntegratedGradientsPlan {
    /// Points on the path from the baseline to the input.
    pub steps: usize,
    /// The baseline image.
    pub baseline: Baseline,
    /// Standard deviation of the blurred baseline, as a fraction of the input's longer side.
    pub blur_sigma: f32,
    /// The quadrature rule.
    pub quadrature: Quadrature,
    /// Seed of the noise baseline.
    pub seed: u64,
    /// Path points evaluated per forward/backward pass (bounds memory; results do not depend
    /// on it).
    pub batch_size: usize,
}

impl IntegratedGradientsPlan {
    /// The fewest points a path can have: both of its ends.
    pub const MIN_STEPS: usize = 2;
}

impl Default for IntegratedGradientsPlan {
    fn default() -> Self {
        Self {
            steps: 32,
            baseline: Baseline::Black,
            blur_sigma: DEFAULT_BLUR_SIGMA,
            quadrature: Quadrature::GaussLegendre,
            seed: 0,
            batch_size: 16,
        }
    }
}

/// The blur of the blurred baseline and of the insertion curve's start, as a fraction of the
/// input's longer side (4 pixels at 64², 14 at 224²).
pub const DEFAULT_BLUR_SIGMA: f32 = 1.0 / 16.0;

/// SHAP (expected gradients) settings; the background images come with the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShapPlan {
    /// Samples `(background image, point on the path)`; SHAP's default is 200.
    pub samples: usize,
    /// Seed of the draws.
    pub seed: u64,
    /// Samples per forward/backward pass.
    pub batch_size: usize,
}

impl Default for ShapPlan {
    fn default() -> Self {
        Self {
            samples: 200,
            seed: 0,
            batch_size: 16,
        }
    }
}

/// Deletion and insertion curves (Petsiuk et al., 2018) for every map of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaithfulnessPlan {
    /// Steps of each curve: `steps + 1` points from 0 % to 100 % of the pixels.
    pub steps: usize,
    /// Blur of the insertion curve's starting image, as a fraction of the longer side.
    pub blur_sigma: f32,
    /// Images per forward pass.
    pub batch_size: usize,
}

impl Default for FaithfulnessPlan {
    fn default() -> Self {
        Self {
            steps: 16,
            blur_sigma: DEFAULT_BLUR_SIGMA,
            batch_size: 17,
        }
    }
}

/// An explanation request: everything [`explain`](super::explain) needs besides the model, the
/// image and (for SHAP) the background set. Serialised into every [`Report`](super::Report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Request {
    /// The methods to compute, in addition to the feature-map means.
    pub methods: Vec<Method>,
    /// Stage of the CAM methods, by name; `None` is the model's last stage.
    pub layer: Option<String>,
    /// The class explained.
    pub target: Target,
    /// The score the CAM methods differentiate.
    pub score: CamScore,
    /// Integrated-gradients settings (used when the method is requested).
    pub integrated_gradients: IntegratedGradientsPlan,
    /// SHAP settings (used when the method is requested).
    pub shap: ShapPlan,
    /// Deletion and insertion curves of every map; `None` skips them.
    pub faithfulness: Option<FaithfulnessPlan>,
}

impl Default for Request {
    fn default() -> Self {
        Self {
            methods: vec![Method::GradCam],
            layer: None,
            target: Target::Predicted,
            score: CamScore::Logit,
            integrated_gradients: IntegratedGradientsPlan::default(),
            shap: ShapPlan::default(),
            faithfulness: None,
        }
    }
}

impl Request {
    /// The requested methods without repeats, in [`Method::ALL`] order.
    pub fn methods(&self) -> Vec<Method> {
        Method::ALL
            .into_iter()
            .filter(|m| self.methods.contains(m))
            .collect()
    }

    /// Checks the request against a model with `num_classes` classes.
    pub fn validate(&self, num_classes: usize) -> Result<()> {
        self.target.validate(num_classes)?;
        let ig = &self.integrated_gradients;
        if self.methods.contains(&Method::IntegratedGradients)
            && (ig.steps < IntegratedGradientsPlan::MIN_STEPS || ig.batch_size == 0)
        {
            return Err(integrated_gradients_plan_error(ig));
        }
        if self.methods.contains(&Method::Shap)
            && (self.shap.samples == 0 || self.shap.batch_size == 0)
        {
            return Err(Error::InvalidRequest(
                "SHAP needs at least one sample and a positive batch size".into(),
            ));
        }
        if let Some(plan) = &self.faithfulness
            && (plan.steps == 0 || plan.batch_size == 0)
        {
            return Err(Error::InvalidRequest(
                "deletion and insertion curves need at least one step and a positive batch size"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Why `plan` cannot be run: too few steps or no batch.
pub(crate) fn integrated_gradients_plan_error(plan: &IntegratedGradientsPlan) -> Error {
    Error::InvalidRequest(format!(
        "integrated gradients need at least {} steps and a positive batch size (got {} and {})",
        IntegratedGradientsPlan::MIN_STEPS,
        plan.steps,
        plan.batch_size
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_the_same_way() {
        for method in Method::ALL {
            assert_eq!(method.name().parse::<Method>().unwrap(), method);
            assert_eq!(
                serde_json::to_string(&method).unwrap(),
                format!("\"{}\"", method.name())
            );
        }
        assert_eq!(
            "probability".parse::<CamScore>().unwrap(),
            CamScore::Probability
        );
        assert_eq!("blur".parse::<Baseline>().unwrap(), Baseline::Blur);
        assert_eq!(
            "riemann_trapezoid".parse::<Quadrature>().unwrap(),
            Quadrature::Trapezoid
        );
        assert_eq!(Quadrature::Trapezoid.to_string(), "riemann_trapezoid");
        for score in [CamScore::Logit, CamScore::Probability] {
            assert_eq!(score.to_string().parse::<CamScore>().unwrap(), score);
        }
        for baseline in [Baseline::Black, Baseline::Blur, Baseline::Noise] {
            assert_eq!(baseline.to_string().parse::<Baseline>().unwrap(), baseline);
        }
    }

    #[test]
    fn an_unknown_name_lists_the_valid_ones() {
        let err = "gradcam".parse::<Method>().unwrap_err().to_string();
        assert!(
            err.contains("gradcam") && err.contains("grad-cam++"),
            "{err}"
        );
    }

    #[test]
    fn a_partial_json_request_takes_the_defaults() {
        let request: Request = serde_json::from_str(
            r#"{"methods": ["layer-cam", "grad-cam", "layer-cam"], "target": {"class": 2}}"#,
        )
        .unwrap();
        assert_eq!(request.methods(), vec![Method::GradCam, Method::LayerCam]);
        assert_eq!(request.target, Target::Class(2));
        assert_eq!(request.integrated_gradients.steps, 32);
        assert!(request.validate(3).is_ok());
        assert!(request.validate(2).is_err());
    }

    #[test]
    fn impossible_plans_are_refused() {
        let mut request = Request {
            methods: vec![Method::IntegratedGradients],
            ..Request::default()
        };
        request.integrated_gradients.steps = 1;
        assert!(request.validate(2).is_err());
        let request = Request {
            faithfulness: Some(FaithfulnessPlan {
                steps: 0,
                ..FaithfulnessPlan::default()
            }),
            ..Request::default()
        };
        assert!(request.validate(2).is_err());
    }
}
