//! Deterministic weights for full-size parity without a committed checkpoint: the formula of
//! `pkg-scripts/make-densenet121-fixture.py`, which fills torchvision's DenseNet-121 the same way
//! in PyTorch (see that script for its definition). Also the torchvision `state_dict` layout of
//! DenseNet-121, written out independently of kdlens's model.

use super::torch_file::{Entry, Values};

fn fnv1a32(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// `n` draws in [0, 1) for the tensor `name`, each a multiple of 2⁻²⁴ (exact in `f32`).
pub fn unit_draws(name: &str, n: usize) -> Vec<f32> {
    let h = fnv1a32(name);
    (0..n)
        .map(|i| {
            let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(h);
            let y = (x ^ (x >> 16)).wrapping_mul(0x045d_9f3b);
            let u = y ^ (y >> 16);
            (u >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect()
}

/// The formula's values for the `state_dict` entry `name` of `shape` (or `"input"`).
pub fn values(name: &str, shape: &[usize]) -> Values {
    let n = shape.iter().product();
    if name.ends_with("num_batches_tracked") {
        return Values::I64(vec![0; n]);
    }
    let r = unit_draws(name, n);
    let map = |f: &dyn Fn(f32) -> f32| Values::F32(r.iter().map(|&x| f(x)).collect());
    if name == "input" {
        map(&|x| x)
    } else if name.ends_with("weight") && shape.len() >= 2 {
        let fan_in: usize = shape[1..].iter().product();
        let bound = (6.0f64 / fan_in as f64).sqrt() as f32;
        map(&|x| (2.0 * x - 1.0) * bound)
    } else if name.ends_with("weight") || name.ends_with("running_var") {
        map(&|x| 0.5 + x)
    } else if name.ends_with("bias") || name.ends_with("running_mean") {
        map(&|x| (2.0 * x - 1.0) * 0.2)
    } else {
        panic!("no formula for {name}")
    }
}

/// `(key, shape)` of torchvision's `densenet121(num_classes=classes).state_dict()`, in its order.
pub fn densenet121_layout(classes: usize) -> Vec<(String, Vec<usize>)> {
    let mut layout = Vec::new();
    let norm = |layout: &mut Vec<(String, Vec<usize>)>, prefix: &str, c: usize| {
        for field in ["weight", "bias", "running_mean", "running_var"] {
            layout.push((format!("{prefix}.{field}"), vec![c]));
        }
        layout.push((format!("{prefix}.num_batches_tracked"), vec![]));
    };
    layout.push(("features.conv0.weight".into(), vec![64, 3, 7, 7]));
    norm(&mut layout, "features.norm0", 64);
    let (growth, bottleneck) = (32, 128);
    let mut channels = 64;
    for (b, layers) in [6usize, 12, 24, 16].into_iter().enumerate() {
        for l in 0..layers {
            let prefix = format!("features.denseblock{}.denselayer{}", b + 1, l + 1);
            let c_in = channels + l * growth;
            norm(&mut layout, &format!("{prefix}.norm1"), c_in);
            layout.push((
                format!("{prefix}.conv1.weight"),
                vec![bottleneck, c_in, 1, 1],
            ));
            norm(&mut layout, &format!("{prefix}.norm2"), bottleneck);
            layout.push((
                format!("{prefix}.conv2.weight"),
                vec![growth, bottleneck, 3, 3],
            ));
        }
        channels += layers * growth;
        if b < 3 {
            let prefix = format!("features.transition{}", b + 1);
            norm(&mut layout, &format!("{prefix}.norm"), channels);
            layout.push((
                format!("{prefix}.conv.weight"),
                vec![channels / 2, channels, 1, 1],
            ));
            channels /= 2;
        }
    }
    norm(&mut layout, "features.norm5", channels);
    layout.push(("classifier.weight".into(), vec![classes, channels]));
    layout.push(("classifier.bias".into(), vec![classes]));
    layout
}

/// torchvision's DenseNet-121 `state_dict` with `classes` outputs, filled by the formula.
pub fn densenet121_state_dict(classes: usize) -> Vec<Entry> {
    densenet121_layout(classes)
        .into_iter()
        .map(|(name, shape)| Entry {
            values: values(&name, &shape),
            name,
            shape,
        })
        .collect()
}
