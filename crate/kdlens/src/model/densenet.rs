//! DenseNet (Huang et al., 2017), laid out exactly like torchvision's `DenseNet` so that a
//! torchvision `state_dict` maps onto it parameter for parameter.

use burn::{
    module::{Module, Param},
    nn::{
        BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d,
        conv::{Conv2d, Conv2dConfig},
    },
    tensor::{Device, Tensor},
};
use serde::{Deserialize, Serialize};

use super::{ForwardTrace, LayerInfo, LayeredClassifier, ModelCost, global_average_pool};
use crate::{
    Error, Result, conv,
    norm::batch_norm_relu,
    pool::{self, Window},
};

/// The shape of a DenseNet: growth rate, layers per dense block, stem width and bottleneck
/// factor, as in torchvision's `DenseNet(growth_rate, block_config, num_init_features, bn_size)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenseNetConfig {
    /// Channels each dense layer adds (`k` in the paper); 32 for DenseNet-121.
    pub growth_rate: usize,
    /// Dense layers in each of the four blocks; `[6, 12, 24, 16]` for DenseNet-121.
    pub block_config: [usize; 4],
    /// Channels of the stem convolution; 64 for DenseNet-121.
    pub num_init_features: usize,
    /// Bottleneck width as a multiple of the growth rate; 4 for DenseNet-121.
    pub bn_size: usize,
}

impl DenseNetConfig {
    /// DenseNet-121: growth 32, blocks 6/12/24/16, 64 stem channels, bottleneck 4.
    pub fn densenet121() -> Self {
        Self {
            growth_rate: 32,
            block_config: [6, 12, 24, 16],
            num_init_features: 64,
            bn_size: 4,
        }
    }

    /// Channels entering each block and each transition, and the final width.
    fn widths(&self) -> Vec<(usize, usize)> {
        // (block input channels, block output channels) for each block
        let mut c = self.num_init_features;
        self.block_config
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let input = c;
                let output = c + n * self.growth_rate;
                c = if i < 3 { output / 2 } else { output };
                (input, output)
            })
            .collect()
    }

    /// Spatial size along one axis after the stem convolution, after the stem pool, and after
    /// each transition.
    fn sizes(size: usize) -> [usize; 5] {
        let conv0 = (size + 2 * 3 - 7) / 2 + 1;
        let [pool0, _] = STEM_POOL.out_size([conv0, conv0]);
        [conv0, pool0, pool0 / 2, pool0 / 4, pool0 / 8]
    }

    /// The input must survive the stem and three transitions with at least one pixel left.
    pub(crate) fn check(&self, input_size: [usize; 2]) -> Result<()> {
        if self.growth_rate == 0 || self.num_init_features == 0 || self.bn_size == 0 {
            return Err(Error::InvalidConfig(
                "DenseNet growth rate, stem width and bottleneck factor must be positive".into(),
            ));
        }
        // Far beyond any published DenseNet (DenseNet-264: growth 32, blocks up to 64 layers),
        // and small enough that a hostile configuration cannot make sizing loops run for ever.
        if self.growth_rate > 256
            || self.num_init_features > 1024
            || self.bn_size > 16
            || self.block_config.iter().any(|&b| b > 256)
        {
            return Err(Error::InvalidConfig(format!(
                "DenseNet configuration out of range (growth {}, stem {}, bottleneck {}, blocks {:?}; \
                 limits 256, 1024, 16, 256 layers per block)",
                self.growth_rate, self.num_init_features, self.bn_size, self.block_config
            )));
        }
        if input_size.iter().any(|&s| s < 29) {
            return Err(Error::InvalidConfig(format!(
                "DenseNet down-samples by 32 and needs at least 29×29 pixels, got {}×{}",
                input_size[0], input_size[1]
            )));
        }
        Ok(())
    }

    /// Parameters and MACs per layer at `input_size`.
    pub(crate) fn cost(&self, num_classes: usize, input_size: [usize; 2]) -> ModelCost {
        let (hs, ws) = (Self::sizes(input_size[0]), Self::sizes(input_size[1]));
        let mut cost = ModelCost::default();
        let stem = self.num_init_features;
        cost.conv("features.conv0", 3, [stem, hs[0], ws[0]], 7, false);
        cost.batchnorm("features.norm0", [stem, hs[0], ws[0]]);
        let bottleneck = self.bn_size * self.growth_rate;
        for (b, (input, output)) in self.widths().into_iter().enumerate() {
            let (h, w) = (hs[b + 1], ws[b + 1]);
            for l in 0..self.block_config[b] {
                let c = input + l * self.growth_rate;
                let name = format!("features.denseblock{}.layers.{l}", b + 1);
                cost.batchnorm(format!("{name}.norm1"), [c, h, w]);
                cost.conv(format!("{name}.conv1"), c, [bottleneck, h, w], 1, false);
                cost.batchnorm(format!("{name}.norm2"), [bottleneck, h, w]);
                cost.conv(
                    format!("{name}.conv2"),
                    bottleneck,
                    [self.growth_rate, h, w],
                    3,
                    false,
                );
            }
            if b < 3 {
                let name = format!("features.transition{}", b + 1);
                cost.batchnorm(format!("{name}.norm"), [output, h, w]);
                cost.conv(format!("{name}.conv"), output, [output / 2, h, w], 1, false);
            } else {
                cost.batchnorm("features.norm5", [output, h, w]);
                cost.dense("classifier", output, num_classes);
            }
        }
        cost
    }
}

/// One bottleneck layer: BN → ReLU → 1×1 conv → BN → ReLU → 3×3 conv (`growth_rate` channels).
#[derive(Module, Debug)]
pub struct DenseLayer {
    /// BatchNorm on the concatenated input.
    pub norm1: BatchNorm,
    /// 1×1 bottleneck convolution to `bn_size · growth_rate` channels.
    pub conv1: Conv2d,
    /// BatchNorm on the bottleneck.
    pub norm2: BatchNorm,
    /// 3×3 convolution to `growth_rate` channels.
    pub conv2: Conv2d,
}

impl DenseLayer {
    fn new(in_c: usize, config: &DenseNetConfig, device: &Device) -> Self {
        let bottleneck = config.bn_size * config.growth_rate;
        Self {
            norm1: BatchNormConfig::new(in_c).init(device),
            conv1: Conv2dConfig::new([in_c, bottleneck], [1, 1])
                .with_bias(false)
                .with_initializer(torchvision_conv_init())
                .init(device),
            norm2: BatchNormConfig::new(bottleneck).init(device),
            conv2: Conv2dConfig::new([bottleneck, config.growth_rate], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .with_initializer(torchvision_conv_init())
                .init(device),
        }
    }

    /// The `growth_rate` new channels computed from all previous ones.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = conv::forward(&self.conv1, batch_norm_relu(&self.norm1, x));
        conv::forward(&self.conv2, batch_norm_relu(&self.norm2, x))
    }
}

/// A dense block: each layer sees the concatenation of the block input and all earlier outputs.
#[derive(Module, Debug)]
pub struct DenseBlock {
    /// The block's layers (torchvision's `denselayer1` … are `layers.0` …).
    pub layers: Vec<DenseLayer>,
}

impl DenseBlock {
    /// The block input concatenated with every layer's output along the channels.
    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.layers.iter().fold(input, |x, layer| {
            let new = layer.forward(x.clone());
            Tensor::cat(vec![x, new], 1)
        })
    }
}

/// A transition between blocks: BN → ReLU → 1×1 conv halving the channels → 2×2 average pool.
#[derive(Module, Debug)]
pub struct Transition {
    /// BatchNorm on the block output.
    pub norm: BatchNorm,
    /// 1×1 convolution halving the channels.
    pub conv: Conv2d,
}

/// The convolutional trunk, named like torchvision's `DenseNet.features`.
#[derive(Module, Debug)]
pub struct DenseNetFeatures {
    /// 7×7 stride-2 stem convolution.
    pub conv0: Conv2d,
    /// Stem BatchNorm.
    pub norm0: BatchNorm,
    /// First dense block.
    pub denseblock1: DenseBlock,
    /// First transition.
    pub transition1: Transition,
    /// Second dense block.
    pub denseblock2: DenseBlock,
    /// Second transition.
    pub transition2: Transition,
    /// Third dense block.
    pub denseblock3: DenseBlock,
    /// Third transition.
    pub transition3: Transition,
    /// Fourth dense block.
    pub denseblock4: DenseBlock,
    /// Final BatchNorm.
    pub norm5: BatchNorm,
}

/// A DenseNet classifier with torchvision's parameter names (`features.conv0.weight`,
/// `features.denseblock1.layers.0.norm1.weight`, …, `classifier.weight`).
///
/// Stages for explanation (9): `features.relu0` (stem, before its max-pool), each
/// `features.denseblockN` output, each `features.transitionN` convolution output (before its
/// average pool), and `features.norm5` (after the final BatchNorm and ReLU; the default
/// Grad-CAM layer, like torchvision's `features[-1]`).
#[derive(Module, Debug)]
pub struct DenseNet {
    /// The convolutional trunk.
    pub features: DenseNetFeatures,
    /// The class layer on the globally pooled features.
    pub classifier: Linear,
    input_size: [usize; 2],
    stage_channels: Vec<usize>,
}

/// Number of explanation stages of a DenseNet.
const STAGES: usize = 9;

/// The stem's max-pool: 3×3, stride 2, padding 1.
const STEM_POOL: Window = Window {
    kernel: [3, 3],
    stride: [2, 2],
    padding: [1, 1],
};

/// The transitions' average pool: 2×2, stride 2.
const TRANSITION_POOL: Window = Window {
    kernel: [2, 2],
    stride: [2, 2],
    padding: [0, 0],
};

/// torchvision's initialisation of DenseNet's convolutions: `kaiming_normal_` with its defaults,
/// i.e. normal with standard deviation √(2 / fan_in), fan_in = input channels · kernel area.
/// (burn's default, like a plain PyTorch `Conv2d`'s, is uniform with standard deviation
/// √(1 / (3 · fan_in)): 2.45× smaller weights, which under batch norm and Adam make every step
/// 2.45× larger relative to the weights.)
fn torchvision_conv_init() -> Initializer {
    Initializer::KaimingNormal {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: false,
    }
}

/// The classifier as torchvision initialises it: PyTorch's default `Linear` weight (uniform in
/// ±1 / √fan_in, which burn's default equals) and a zero bias.
fn classifier_with_zero_bias(inputs: usize, classes: usize, device: &Device) -> Linear {
    let mut linear = LinearConfig::new(inputs, classes).init(device);
    linear.bias = Some(Param::from_tensor(Tensor::zeros([classes], device)));
    linear
}

impl DenseNet {
    /// A DenseNet with freshly initialised weights, initialised as torchvision's `DenseNet`:
    /// convolutions by [`torchvision_conv_init`], batch norms at scale 1 and shift 0, the
    /// classifier by [`classifier_with_zero_bias`].
    pub fn new(
        config: &DenseNetConfig,
        num_classes: usize,
        input_size: [usize; 2],
        device: &Device,
    ) -> Self {
        let widths = config.widths();
        let block = |b: usize| DenseBlock {
            layers: (0..config.block_config[b])
                .map(|l| DenseLayer::new(widths[b].0 + l * config.growth_rate, config, device))
                .collect(),
        };
        let transition = |b: usize| {
            let c = widths[b].1;
            Transition {
                norm: BatchNormConfig::new(c).init(device),
                conv: Conv2dConfig::new([c, c / 2], [1, 1])
                    .with_bias(false)
                    .with_initializer(torchvision_conv_init())
                    .init(device),
            }
        };
        let final_width = widths[3].1;
        let mut stage_channels = vec![config.num_init_features];
        for (b, &(_, output)) in widths.iter().enumerate() {
            stage_channels.push(output);
            stage_channels.push(if b < 3 { output / 2 } else { output });
        }
        Self {
            features: DenseNetFeatures {
                conv0: Conv2dConfig::new([3, config.num_init_features], [7, 7])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
                    .with_bias(false)
                    .with_initializer(torchvision_conv_init())
                    .init(device),
                norm0: BatchNormConfig::new(config.num_init_features).init(device),
                denseblock1: block(0),
                transition1: transition(0),
                denseblock2: block(1),
                transition2: transition(1),
                denseblock3: block(2),
                transition3: transition(2),
                denseblock4: block(3),
                norm5: BatchNormConfig::new(final_width).init(device),
            },
            classifier: classifier_with_zero_bias(final_width, num_classes, device),
            input_size,
            stage_channels,
        }
    }

    fn block(&self, b: usize) -> &DenseBlock {
        let f = &self.features;
        [
            &f.denseblock1,
            &f.denseblock2,
            &f.denseblock3,
            &f.denseblock4,
        ][b]
    }

    fn transition(&self, b: usize) -> &Transition {
        let f = &self.features;
        [&f.transition1, &f.transition2, &f.transition3][b]
    }

    /// Computes stage `k`'s activation from its input.
    fn stage(&self, k: usize, x: Tensor<4>) -> Tensor<4> {
        let f = &self.features;
        match k {
            0 => batch_norm_relu(&f.norm0, conv::forward(&f.conv0, x)),
            8 => batch_norm_relu(&f.norm5, x),
            k if k % 2 == 1 => self.block(k / 2).forward(x),
            k => {
                let t = self.transition(k / 2 - 1);
                conv::forward(&t.conv, batch_norm_relu(&t.norm, x))
            }
        }
    }

    /// Turns stage `k`'s activation into the next stage's input (the pools between stages).
    fn after(&self, k: usize, activation: Tensor<4>) -> Tensor<4> {
        match k {
            0 => pool::max_pool2d(activation, STEM_POOL),
            k if k % 2 == 0 && k < 8 => pool::avg_pool2d(activation, TRANSITION_POOL),
            _ => activation,
        }
    }

    fn head(&self, x: Tensor<4>) -> Tensor<2> {
        self.classifier.forward(global_average_pool(x))
    }
}

impl LayeredClassifier for DenseNet {
    fn layers(&self) -> Vec<LayerInfo> {
        let (hs, ws) = (
            DenseNetConfig::sizes(self.input_size[0]),
            DenseNetConfig::sizes(self.input_size[1]),
        );
        (0..STAGES)
            .map(|k| {
                let (name, size_index) = match k {
                    0 => ("features.relu0".to_string(), 0),
                    8 => ("features.norm5".to_string(), 4),
                    k if k % 2 == 1 => (format!("features.denseblock{}", k / 2 + 1), k / 2 + 1),
                    k => (format!("features.transition{}", k / 2), k / 2),
                };
                LayerInfo {
                    name,
                    channels: self.stage_channels[k],
                    size: [hs[size_index], ws[size_index]],
                }
            })
            .collect()
    }

    fn num_classes(&self) -> usize {
        self.classifier.weight.shape().dims::<2>()[1]
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<2> {
        let x = (0..STAGES).fold(input, |x, k| self.after(k, self.stage(k, x)));
        self.head(x)
    }

    fn forward_with_activations(&self, input: Tensor<4>) -> ForwardTrace {
        let mut activations = Vec::with_capacity(STAGES);
        let mut x = input;
        for k in 0..STAGES {
            let a = self.stage(k, x);
            activations.push(a.clone());
            x = self.after(k, a);
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
        assert!(
            layer < STAGES,
            "DenseNet has {STAGES} stages, asked for {layer}"
        );
        let x = (layer + 1..STAGES).fold(self.after(layer, activation), |x, k| {
            self.after(k, self.stage(k, x))
        });
        self.head(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32 tensor")
    }

    /// (mean, standard deviation, largest magnitude)
    fn moments(w: &[f32]) -> (f64, f64, f64) {
        let n = w.len() as f64;
        let mean = w.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let largest = w.iter().map(|v| v.abs() as f64).fold(0.0, f64::max);
        (mean, var.sqrt(), largest)
    }

    #[test]
    fn fresh_weights_follow_torchvisions_initialisation() {
        let device = Device::flex();
        let config = DenseNetConfig {
            growth_rate: 8,
            block_config: [2, 2, 2, 2],
            num_init_features: 64,
            bn_size: 4,
        };
        let net = DenseNet::new(&config, 5, [32, 32], &device);
        // conv0: 64 × 3 × 7 × 7 = 9,408 draws; fan_in 147.
        let conv0 = values(net.features.conv0.weight.val());
        let (mean, std, largest) = moments(&conv0);
        let want = (2.0 / 147.0f64).sqrt();
        assert!(mean.abs() < 0.05 * want, "conv0 mean {mean}");
        assert!(
            (std / want - 1.0).abs() < 0.05,
            "conv0 std {std}, want {want}"
        );
        // A normal draw of this size exceeds 3 σ; burn's uniform default stops at √3 σ.
        assert!(largest > 3.0 * want, "conv0 largest {largest}: not normal");
        // A dense layer's 3×3 convolution: fan_in = bn_size · growth · 9 = 288.
        let conv2 = values(net.features.denseblock1.layers[0].conv2.weight.val());
        let (_, std, _) = moments(&conv2);
        let want = (2.0 / 288.0f64).sqrt();
        assert!(
            (std / want - 1.0).abs() < 0.1,
            "conv2 std {std}, want {want}"
        );
        let bias = net.classifier.bias.as_ref().expect("classifier bias");
        assert!(values(bias.val()).iter().all(|&b| b == 0.0));
        let weight = values(net.classifier.weight.val());
        let bound = 1.0 / (net.classifier.weight.dims()[0] as f32).sqrt();
        assert!(weight.iter().all(|w| w.abs() <= bound) && weight.iter().any(|&w| w != 0.0));
    }
}
