//! Parameter and compute accounting (the paper's "params" and "FLOPs" columns).
//!
//! Multiply-accumulates (MACs) are counted for convolutions and dense layers, the layers that
//! carry the arithmetic: `out_h·out_w·out_c·(in_c/groups)·k_h·k_w` for a convolution and
//! `in·out` for a dense layer. Batch normalisation, activations and pooling are counted as
//! parameters where they have some, and not as MACs. FLOPs are reported as 2 × MACs.

use serde::{Deserialize, Serialize};

/// Cost of one layer for a single image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerCost {
    /// Parameter path, e.g. `convs.2` or `features.denseblock1.layers.0.conv1`.
    pub name: String,
    /// `conv`, `dense` or `batchnorm`.
    pub kind: String,
    /// Trainable parameters (weights and biases; BatchNorm's scale and shift).
    pub params: u64,
    /// Multiply-accumulates for one image.
    pub macs: u64,
    /// Output `[channels, height, width]` (`[features, 1, 1]` for dense layers).
    pub output: [usize; 3],
}

/// Cost of a whole model for a single image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ModelCost {
    /// Every parameterised layer in forward order.
    pub layers: Vec<LayerCost>,
}

impl ModelCost {
    /// Total trainable parameters.
    pub fn params(&self) -> u64 {
        self.layers.iter().map(|l| l.params).sum()
    }

    /// Total multiply-accumulates for one image.
    pub fn macs(&self) -> u64 {
        self.layers.iter().map(|l| l.macs).sum()
    }

    /// Total floating-point operations for one image (2 × MACs).
    pub fn flops(&self) -> u64 {
        2 * self.macs()
    }

    /// MACs of the convolutions alone.
    pub fn conv_macs(&self) -> u64 {
        self.layers
            .iter()
            .filter(|l| l.kind == "conv")
            .map(|l| l.macs)
            .sum()
    }

    /// Records a convolution with `kernel`×`kernel` filters, optional bias, producing
    /// `[out_c, out_h, out_w]` from `in_c` channels.
    pub(crate) fn conv(
        &mut self,
        name: impl Into<String>,
        in_c: usize,
        output: [usize; 3],
        kernel: usize,
        bias: bool,
    ) {
        let [out_c, h, w] = output;
        let weights = (out_c * in_c * kernel * kernel) as u64;
        self.layers.push(LayerCost {
            name: name.into(),
            kind: "conv".into(),
            params: weights + if bias { out_c as u64 } else { 0 },
            macs: (h * w) as u64 * weights,
            output,
        });
    }

    /// Records a dense layer `d_in → d_out` with bias.
    pub(crate) fn dense(&mut self, name: impl Into<String>, d_in: usize, d_out: usize) {
        self.layers.push(LayerCost {
            name: name.into(),
            kind: "dense".into(),
            params: (d_in * d_out + d_out) as u64,
            macs: (d_in * d_out) as u64,
            output: [d_out, 1, 1],
        });
    }

    /// Records a BatchNorm over `[c, h, w]` (2·c trainable parameters, no MACs).
    pub(crate) fn batchnorm(&mut self, name: impl Into<String>, output: [usize; 3]) {
        self.layers.push(LayerCost {
            name: name.into(),
            kind: "batchnorm".into(),
            params: 2 * output[0] as u64,
            macs: 0,
            output,
        });
    }
}
