//! Helpers shared by the core's integration tests.
#![allow(dead_code)]

pub mod fetched;
pub mod formula;
pub mod torch_file;

use burn::tensor::Tensor;
use kdlens::{
    explain::{Cam, CamScore, Method, Target, class_activation_maps},
    model::Classifier,
};

/// Grad-CAM alone, through the CAM family's entry point.
pub async fn grad_cam(
    model: &Classifier,
    input: Tensor<4>,
    layer: Option<&str>,
    target: Target,
    score: CamScore,
) -> kdlens::Result<Cam> {
    let mut cams =
        class_activation_maps(model, input, layer, target, score, &[Method::GradCam]).await?;
    Ok(cams.remove(0))
}
