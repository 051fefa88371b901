//! The eight-convolution student of the authors' public code ("kd8").

use burn::{
    module::Module,
    nn::{
        Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
        conv::{Conv2d, Conv2dConfig},
        pool::{MaxPool2d, MaxPool2dConfig},
    },
    tensor::{Device, Tensor, activation::relu},
};

use super::{ForwardTrace, LayerInfo, LayeredClassifier, ModelCost};
use crate::{Error, Result, conv};

/// Output channels of the six plain convolution blocks.
const CHANNELS: [usize; 6] = [32, 64, 128, 256, 512, 512];
/// Channels of the residual block.
const RESIDUAL: usize = 512;
/// Hidden dense widths and their dropout probabilities.
const HIDDEN: [usize; 3] = [512, 256, 128];
const DROPOUT: [f64; 3] = [0.5, 0.4, 0.3];

/// The eight-convolution student built by the authors' public code.
///
/// Six blocks of [3×3 convolution (same padding) → ReLU → 2×2 max-pool] with 32-64-128-256-512-512
/// channels, where the sixth pool keeps the partial window (Keras "same" padding: 7² → 4²); then a
/// residual block of two 512-channel 3×3 convolutions with ReLU whose output is added to the
/// block's input (no activation after the add), another "same" 2×2 pool (4² → 2²), flattening
/// (in `[channels, height, width]` order) and dense 512 → 256 → 128 (ReLU, dropout 0.5 / 0.4 /
/// 0.3) → classes. 9,861,828 parameters for 4 classes at 224².
///
/// Stages for explanation: `conv1` … `conv6`, `res1`, `res2` (after ReLU, before pool or add).
#[derive(Module, Debug)]
pub struct Kd8Student {
    /// The six plain convolutions, `convs.0` … `convs.5`.
    pub convs: Vec<Conv2d>,
    /// First convolution of the residual block.
    pub res1: Conv2d,
    /// Second convolution of the residual block.
    pub res2: Conv2d,
    /// Dense layer on the flattened features → 512.
    pub fc1: Linear,
    /// Dense 512 → 256.
    pub fc2: Linear,
    /// Dense 256 → 128.
    pub fc3: Linear,
    /// Class layer, 128 → classes.
    pub classifier: Linear,
    pool: MaxPool2d,
    pool_same: MaxPool2d,
    dropouts: Vec<Dropout>,
    input_size: [usize; 2],
}

/// Spatial size after each stage for an input of `size` pixels along one axis: five floor
/// halvings, then two ceil halvings.
fn stage_sizes(size: usize) -> [usize; 8] {
    let mut sizes = [0; 8];
    let mut s = size;
    for (i, out) in sizes.iter_mut().enumerate().take(6) {
        *out = s;
        s = if i < 5 { s / 2 } else { s.div_ceil(2) };
    }
    sizes[6] = s;
    sizes[7] = s;
    sizes
}

fn conv3x3(in_c: usize, out_c: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([in_c, out_c], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

impl Kd8Student {
    /// A kd8 student with freshly initialised weights.
    pub fn new(num_classes: usize, input_size: [usize; 2], device: &Device) -> Self {
        let mut in_c = 3;
        let convs = CHANNELS
            .iter()
            .map(|&out_c| {
                let conv = conv3x3(in_c, out_c, device);
                in_c = out_c;
                conv
            })
            .collect();
        Self {
            convs,
            res1: conv3x3(RESIDUAL, RESIDUAL, device),
            res2: conv3x3(RESIDUAL, RESIDUAL, device),
            fc1: LinearConfig::new(Self::flat_features(input_size), HIDDEN[0]).init(device),
            fc2: LinearConfig::new(HIDDEN[0], HIDDEN[1]).init(device),
            fc3: LinearConfig::new(HIDDEN[1], HIDDEN[2]).init(device),
            classifier: LinearConfig::new(HIDDEN[2], num_classes).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            pool_same: MaxPool2dConfig::new([2, 2]).with_ceil_mode(true).init(),
            dropouts: DROPOUT
                .iter()
                .map(|&p| DropoutConfig::new(p).init())
                .collect(),
            input_size,
        }
    }

    /// Width of the flattened features entering the head.
    fn flat_features(input_size: [usize; 2]) -> usize {
        let h = stage_sizes(input_size[0])[7].div_ceil(2);
        let w = stage_sizes(input_size[1])[7].div_ceil(2);
        RESIDUAL * h * w
    }

    /// Five floor halvings need at least 32 pixels per side.
    pub(crate) fn check_input(input_size: [usize; 2]) -> Result<()> {
        if input_size.iter().any(|&s| s < 32) {
            return Err(Error::InvalidConfig(format!(
                "the kd8 student needs at least 32×32 pixels, got {}×{}",
                input_size[0], input_size[1]
            )));
        }
        Ok(())
    }

    /// Parameters and MACs per layer at `input_size`.
    pub(crate) fn cost(num_classes: usize, input_size: [usize; 2]) -> ModelCost {
        let (hs, ws) = (stage_sizes(input_size[0]), stage_sizes(input_size[1]));
        let mut cost = ModelCost::default();
        let mut in_c = 3;
        for (i, &out_c) in CHANNELS.iter().enumerate() {
            cost.conv(format!("convs.{i}"), in_c, [out_c, hs[i], ws[i]], 3, true);
            in_c = out_c;
        }
        cost.conv("res1", RESIDUAL, [RESIDUAL, hs[6], ws[6]], 3, true);
        cost.conv("res2", RESIDUAL, [RESIDUAL, hs[7], ws[7]], 3, true);
        cost.dense("fc1", Self::flat_features(input_size), HIDDEN[0]);
        cost.dense("fc2", HIDDEN[0], HIDDEN[1]);
        cost.dense("fc3", HIDDEN[1], HIDDEN[2]);
        cost.dense("classifier", HIDDEN[2], num_classes);
        cost
    }

    /// The residual add, the last pool and the dense head.
    fn tail(&self, res2: Tensor<4>, shortcut: Tensor<4>) -> Tensor<2> {
        let x = self.pool_same.forward(res2 + shortcut);
        let [batch, c, h, w] = x.dims();
        let x = x.reshape([batch, c * h * w]);
        let x = self.dropouts[0].forward(relu(self.fc1.forward(x)));
        let x = self.dropouts[1].forward(relu(self.fc2.forward(x)));
        let x = self.dropouts[2].forward(relu(self.fc3.forward(x)));
        self.classifier.forward(x)
    }

    /// The pooling that follows plain convolution `i` (0-based).
    fn pool_after(&self, i: usize, x: Tensor<4>) -> Tensor<4> {
        if i < 5 {
            self.pool.forward(x)
        } else {
            self.pool_same.forward(x)
        }
    }
}

impl LayeredClassifier for Kd8Student {
    fn layers(&self) -> Vec<LayerInfo> {
        let (hs, ws) = (
            stage_sizes(self.input_size[0]),
            stage_sizes(self.input_size[1]),
        );
        let names = (1..=6)
            .map(|i| format!("conv{i}"))
            .chain(["res1".to_string(), "res2".to_string()]);
        CHANNELS
            .iter()
            .chain([RESIDUAL, RESIDUAL].iter())
            .zip(names)
            .enumerate()
            .map(|(i, (&channels, name))| LayerInfo {
                name,
                channels,
                size: [hs[i], ws[i]],
            })
            .collect()
    }

    fn num_classes(&self) -> usize {
        self.classifier.weight.shape().dims::<2>()[1]
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        self.forward_with_activations(input).logits
    }

    fn forward_with_activations(&self, input: Tensor<4>) -> ForwardTrace {
        let mut activations = Vec::with_capacity(8);
        let mut x = input;
        for (i, layer) in self.convs.iter().enumerate() {
            let a = conv::forward_relu(layer, x);
            activations.push(a.clone());
            x = self.pool_after(i, a);
        }
        let shortcut = x.clone();
        let r1 = conv::forward_relu(&self.res1, x);
        activations.push(r1.clone());
        let r2 = conv::forward_relu(&self.res2, r1);
        activations.push(r2.clone());
        ForwardTrace {
            logits: self.tail(r2, shortcut),
            activations,
        }
    }

    fn forward_from(
        &self,
        layer: usize,
        activation: Tensor<4>,
        earlier: &[Tensor<4>],
    ) -> Tensor<2> {
        match layer {
            0..=5 => {
                let mut x = self.pool_after(layer, activation);
                for (i, stage) in self.convs.iter().enumerate().skip(layer + 1) {
                    x = self.pool_after(i, conv::forward_relu(stage, x));
                }
                let shortcut = x.clone();
                let r2 = conv::forward_relu(&self.res2, conv::forward_relu(&self.res1, x));
                self.tail(r2, shortcut)
            }
            6 => {
                let shortcut = self.pool_same.forward(earlier[5].clone().detach());
                self.tail(conv::forward_relu(&self.res2, activation), shortcut)
            }
            7 => {
                let shortcut = self.pool_same.forward(earlier[5].clone().detach());
                self.tail(activation, shortcut)
            }
            _ => panic!("kd8 has 8 stages, asked to resume from stage {layer}"),
        }
    }
}
