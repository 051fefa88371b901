//! One type for any kdlens model, so that training, export and explanation code is written once.

use burn::{module::Module, tensor::Tensor};

use super::{DenseNet, FiveLayerStudent, ForwardTrace, Kd8Student, LayerInfo, LayeredClassifier};

/// Any of the kdlens architectures, built from a [`ModelSpec`](super::ModelSpec).
// A model exists once or twice per process; the size difference between variants (a few KB of
// layer handles) does not matter, and boxing would hide the variants from the Module derive.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Classifier {
    /// The paper's five-layer student.
    FiveLayer(FiveLayerStudent),
    /// The eight-convolution student of the authors' code.
    Kd8(Kd8Student),
    /// A DenseNet teacher.
    DenseNet(DenseNet),
}

impl Classifier {
    fn inner(&self) -> &dyn LayeredClassifier {
        match self {
            Classifier::FiveLayer(m) => m,
            Classifier::Kd8(m) => m,
            Classifier::DenseNet(m) => m,
        }
    }
}

impl LayeredClassifier for Classifier {
    fn layers(&self) -> Vec<LayerInfo> {
        self.inner().layers()
    }

    fn num_classes(&self) -> usize {
        self.inner().num_classes()
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        self.inner().forward(input)
    }

    fn forward_with_activations(&self, input: Tensor<4>) -> ForwardTrace {
        self.inner().forward_with_activations(input)
    }

    fn forward_from(
        &self,
        layer: usize,
        activation: Tensor<4>,
        earlier: &[Tensor<4>],
    ) -> Tensor<2> {
        self.inner().forward_from(layer, activation, earlier)
    }
}
