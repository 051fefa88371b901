//! The paper's five-layer student.

use burn::{
    module::Module,
    nn::{
        Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
        conv::{Conv2d, Conv2dConfig},
    },
    tensor::{Device, Tensor, activation::relu},
};

use super::{ForwardTrace, LayerInfo, LayeredClassifier, ModelCost, global_average_pool};
use crate::{Error, Result, conv, pool::max_pool_2x2};

/// Output channels of the five convolution blocks.
pub(crate) const CHANNELS: [usize; 5] = [32, 64, 128, 256, 512];
/// Widths of the hidden dense layers of the head.
pub(crate) const HIDDEN: [usize; 3] = [512, 256, 128];
/// Dropout probabilities after each hidden dense layer.
pub(crate) const DROPOUT: [f64; 3] = [0.5, 0.4, 0.3];

/// The five-layer student of KD-FMV.
///
/// Five blocks of [3×3 convolution (stride 1, same padding) → ReLU → 2×2 max-pool] with 32, 64,
/// 128, 256 and 512 channels (a 224² input ends at 7²), then global average pooling and a head
/// of dense 512 → 256 → 128 (ReLU, dropout 0.5 / 0.4 / 0.3) → classes.
///
/// Stages for explanation: `conv1` … `conv5` (after ReLU, before pooling).
#[derive(Module, Debug)]
pub struct FiveLayerStudent {
    /// The five convolutions, `convs.0` … `convs.4`.
    pub convs: Vec<Conv2d>,
    /// First hidden dense layer, 512 → 512.
    pub fc1: Linear,
    /// Second hidden dense layer, 512 → 256.
    pub fc2: Linear,
    /// Third hidden dense layer, 256 → 128.
    pub fc3: Linear,
    /// Class layer, 128 → classes.
    pub classifier: Linear,
    dropouts: Vec<Dropout>,
    input_size: [usize; 2],
}

impl FiveLayerStudent {
    /// A student with freshly initialised weights for `num_classes` classes.
    pub fn new(num_classes: usize, input_size: [usize; 2], device: &Device) -> Self {
        let mut in_c = 3;
        let convs = CHANNELS
            .iter()
            .map(|&out_c| {
                let conv = Conv2dConfig::new([in_c, out_c], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device);
                in_c = out_c;
                conv
            })
            .collect();
        Self {
            convs,
            fc1: LinearConfig::new(CHANNELS[4], HIDDEN[0]).init(device),
            fc2: LinearConfig::new(HIDDEN[0], HIDDEN[1]).init(device),
            fc3: LinearConfig::new(HIDDEN[1], HIDDEN[2]).init(device),
            classifier: LinearConfig::new(HIDDEN[2], num_classes).init(device),
            dropouts: DROPOUT
                .iter()
                .map(|&p| DropoutConfig::new(p).init())
                .collect(),
            input_size,
        }
    }

    /// Five 2× poolings need at least 32 pixels on each side.
    pub(crate) fn check_input(input_size: [usize; 2]) -> Result<()> {
        if input_size.iter().any(|&s| s < 32) {
            return Err(Error::InvalidConfig(format!(
                "the five-layer student halves its input five times and needs at least 32×32 \
                 pixels, got {}×{}",
                input_size[0], input_size[1]
            )));
        }
        Ok(())
    }

    /// Parameters and MACs per layer at `input_size`.
    pub(crate) fn cost(num_classes: usize, input_size: [usize; 2]) -> ModelCost {
        let mut cost = ModelCost::default();
        let [mut h, mut w] = input_size;
        let mut in_c = 3;
        for (i, &out_c) in CHANNELS.iter().enumerate() {
            cost.conv(format!("convs.{i}"), in_c, [out_c, h, w], 3, true);
            in_c = out_c;
            h /= 2;
            w /= 2;
        }
        cost.dense("fc1", CHANNELS[4], HIDDEN[0]);
        cost.dense("fc2", HIDDEN[0], HIDDEN[1]);
        cost.dense("fc3", HIDDEN[1], HIDDEN[2]);
        cost.dense("classifier", HIDDEN[2], num_classes);
        cost
    }

    fn head(&self, x: Tensor<4>) -> Tensor<2> {
        let x = global_average_pool(x);
        let x = self.dropouts[0].forward(relu(self.fc1.forward(x)));
        let x = self.dropouts[1].forward(relu(self.fc2.forward(x)));
        let x = self.dropouts[2].forward(relu(self.fc3.forward(x)));
        self.classifier.forward(x)
    }
}

impl LayeredClassifier for FiveLayerStudent {
    fn layers(&self) -> Vec<LayerInfo> {
        let [mut h, mut w] = self.input_size;
        CHANNELS
            .iter()
            .enumerate()
            .map(|(i, &channels)| {
                let info = LayerInfo {
                    name: format!("conv{}", i + 1),
                    channels,
                    size: [h, w],
                };
                h /= 2;
                w /= 2;
                info
            })
            .collect()
    }

    fn num_classes(&self) -> usize {
        self.classifier.weight.shape().dims::<2>()[1]
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        let x = self
            .convs
            .iter()
            .fold(input, |x, layer| max_pool_2x2(conv::forward_relu(layer, x)));
        self.head(x)
    }

    fn forward_with_activations(&self, input: Tensor<4>) -> ForwardTrace {
        let mut activations = Vec::with_capacity(self.convs.len());
        let mut x = input;
        for layer in &self.convs {
            let a = conv::forward_relu(layer, x);
            activations.push(a.clone());
            x = max_pool_2x2(a);
        }
        ForwardTrace {
            logits: self.head(x),
            activations,
        }
    }

    fn forward_from(
        &self,
        layer: usize,
        activation: Tensor<4>,
        _earlier: &[Tensor<4>],
    ) -> Tensor<2> {
        let x = self.convs[layer + 1..]
            .iter()
            .fold(max_pool_2x2(activation), |x, layer| {
                max_pool_2x2(conv::forward_relu(layer, x))
            });
        self.head(x)
    }
}
