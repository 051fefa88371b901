//! The classifiers kdlens trains and explains.
//!
//! - [`FiveLayerStudent`]: the paper's shallow student (the default student).
//! - [`Kd8Student`]: the eight-convolution student of the authors' public code.
//! - [`DenseNet`]: the teacher, DenseNet-121 by default, with torchvision's parameter names so a
//!   torchvision `state_dict` loads into it.
//!
//! All of them output logits (softmax only for display) and implement [`LayeredClassifier`]:
//! a forward pass that also returns every named convolution stage's activation, and a way to run
//! the rest of the network from any of those stages, which is what Grad-CAM needs.

mod classifier;
mod cost;
mod densenet;
mod five_layer;
#[cfg(feature = "import")]
mod import;
mod kd8;
mod spec;

use burn::{
    module::{Module, ModuleVisitor, Param},
    tensor::Tensor,
};

pub use classifier::Classifier;
pub use cost::{LayerCost, ModelCost};
pub use densenet::{DenseNet, DenseNetConfig};
pub use five_layer::FiveLayerStudent;
#[cfg(feature = "import")]
pub use import::{load_pytorch_state_dict, load_torchvision_densenet, save_safetensors};
pub use kd8::Kd8Student;
pub use spec::{Architecture, ModelSpec};

use crate::{Error, Result};

/// One named stage of a network whose output can be explained: a convolution (after its
/// activation, before any pooling) or, for DenseNet, a dense block or transition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerInfo {
    /// Stable name, e.g. `conv3` or `features.denseblock2`.
    pub name: String,
    /// Number of output channels.
    pub channels: usize,
    /// Spatial size `[height, width]` of the stage's output for the model's input size.
    pub size: [usize; 2],
}

/// The output of [`LayeredClassifier::forward_with_activations`].
#[derive(Debug, Clone)]
pub struct ForwardTrace {
    /// Logits, `[batch, classes]`.
    pub logits: Tensor<2>,
    /// One activation per entry of [`LayeredClassifier::layers`], in the same order, each
    /// `[batch, channels, height, width]`.
    pub activations: Vec<Tensor<4>>,
}

/// A classifier whose convolution stages can be inspected and re-entered.
pub trait LayeredClassifier {
    /// The named stages, in forward order.
    fn layers(&self) -> Vec<LayerInfo>;

    /// Number of classes (the width of the logits).
    fn num_classes(&self) -> usize;

    /// Logits `[batch, classes]` for an input `[batch, 3, height, width]`.
    fn forward(&self, input: Tensor<4>) -> Tensor<2>;

    /// Logits and every stage's activation, in one pass.
    fn forward_with_activations(&self, input: Tensor<4>) -> ForwardTrace;

    /// Runs the network from the output of stage `layer` to the logits.
    ///
    /// `activation` replaces that stage's output (typically the same tensor, detached and marked
    /// to require a gradient). `earlier` holds the activations a previous
    /// [`forward_with_activations`](Self::forward_with_activations) recorded for the same input;
    /// networks with skip connections around the stage read their shortcut from it.
    ///
    /// # Panics
    /// If `layer` is not an index into [`layers`](Self::layers); resolve names with
    /// [`layer_index`](Self::layer_index) first.
    fn forward_from(&self, layer: usize, activation: Tensor<4>, earlier: &[Tensor<4>])
    -> Tensor<2>;

    /// Index of the stage called `name`, or a clear error listing the valid names.
    fn layer_index(&self, name: &str) -> Result<usize> {
        let layers = self.layers();
        layers
            .iter()
            .position(|layer| layer.name == name)
            .ok_or_else(|| Error::UnknownLayer {
                name: name.to_string(),
                available: layers
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The default stage for Grad-CAM: the last one.
    fn default_cam_layer(&self) -> usize {
        self.layers().len() - 1
    }

    /// The CAM stage called `name` ([`layer_index`](Self::layer_index)), or the default one
    /// ([`default_cam_layer`](Self::default_cam_layer)) for `None`.
    fn cam_layer(&self, name: Option<&str>) -> Result<usize> {
        match name {
            Some(name) => self.layer_index(name),
            None => Ok(self.default_cam_layer()),
        }
    }

    /// The stage whose map compares with another model's map of `size` (`[height, width]`
    /// positions): the deepest stage at least that fine in both directions (the first stage if
    /// none is). A teacher's last stage is 1×1 for a small input, where every CAM is a constant
    /// and no ranking can agree with a student's 2×2 map.
    fn layer_comparable_to(&self, size: [usize; 2]) -> usize {
        self.layers()
            .iter()
            .rposition(|l| l.size[0] >= size[0] && l.size[1] >= size[1])
            .unwrap_or(0)
    }

    /// The deepest stage with at least `min_side` positions in each direction (the first stage
    /// if none has): where a class activation map still has a spatial ranking when a small input
    /// leaves the last stages 1×1.
    fn deepest_layer_with_side(&self, min_side: usize) -> usize {
        self.layer_comparable_to([min_side, min_side])
    }
}

/// Global average pooling: `[batch, channels, height, width]` → `[batch, channels]`.
pub fn global_average_pool(x: Tensor<4>) -> Tensor<2> {
    let [batch, channels, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([batch, channels])
}

/// Number of trainable parameters (weights, biases, BatchNorm scale and shift) of a module —
/// what PyTorch's `sum(p.numel() for p in model.parameters())` counts. burn's own
/// [`Module::num_params`] also counts BatchNorm's running mean and variance, which are buffers.
pub fn trainable_params<M: Module>(module: &M) -> u64 {
    struct Counter {
        path: Vec<String>,
        total: u64,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let buffer = matches!(
                self.path.last().map(String::as_str),
                Some("running_mean" | "running_var")
            );
            if !buffer {
                self.total += param.lazy_shape().num_elements() as u64;
            }
        }
    }
    let mut counter = Counter {
        path: Vec::new(),
        total: 0,
    };
    module.visit(&mut counter);
    counter.total
}
