//! kdlens' convolution op against burn's `conv2d` through the public tensor API: forward, input
//! gradient, weight gradient and bias gradient, on `flex` (kdlens' kernels) and on `wgpu` when an
//! adapter exists (burn's kernels under kdlens' backward pass); with and without the fused ReLU.

use burn::tensor::{Device, Distribution, Tensor, activation::relu, module, ops::ConvOptions};
use kdlens::conv::Activation;

#[derive(Clone)]
struct Case {
    batch: usize,
    channels: [usize; 2],
    size: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: [(usize, usize); 2],
    bias: bool,
}

fn case(batch: usize, channels: [usize; 2], size: [usize; 2], kernel: usize, pad: usize) -> Case {
    Case {
        batch,
        channels,
        size,
        kernel,
        stride: 1,
        padding: [(pad, pad); 2],
        bias: true,
    }
}

/// The shapes the three models use, and odd ones around them.
fn cases() -> Vec<Case> {
    vec![
        case(2, [3, 32], [17, 12], 3, 1), // a first layer (3 input channels)
        case(1, [32, 64], [14, 14], 3, 1), // Winograd, even size
        case(3, [19, 13], [9, 7], 3, 1),  // Winograd, odd sizes and channel counts
        Case {
            bias: false,
            ..case(2, [40, 16], [7, 7], 1, 0)
        }, // DenseNet's 1×1 bottleneck
        Case {
            bias: false,
            ..case(2, [16, 8], [8, 9], 3, 1)
        }, // DenseNet's 3×3, no bias
        Case {
            bias: false,
            ..case(2, [64, 20], [15, 14], 3, 1)
        }, // DenseNet's 3×3 at 14² and more: shifted products
        Case {
            stride: 2,
            bias: false,
            ..case(2, [3, 8], [21, 20], 7, 3)
        }, // DenseNet's stem
        Case {
            padding: [(0, 2), (1, 0)],
            ..case(1, [9, 6], [8, 10], 3, 0)
        },
    ]
}

/// `(output, grad x, grad weight, grad bias)` of `Σ output ⊙ r` for a fixed random `r`.
fn run(
    conv: impl Fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvOptions<2>) -> Tensor<4>,
    c: &Case,
    device: &Device,
) -> Vec<Tensor<4>> {
    // Seeded so that both runs see the same tensors.
    device.seed(7);
    let [c_in, c_out] = c.channels;
    let x = Tensor::<4>::random(
        [c.batch, c_in, c.size[0], c.size[1]],
        Distribution::Default,
        device,
    )
    .require_grad();
    let w = Tensor::<4>::random(
        [c_out, c_in, c.kernel, c.kernel],
        Distribution::Default,
        device,
    )
    .require_grad();
    let b = c
        .bias
        .then(|| Tensor::<1>::random([c_out], Distribution::Default, device).require_grad());
    let options = ConvOptions::new_with_padding([c.stride; 2], c.padding, [1, 1], 1);
    let y = conv(x.clone(), w.clone(), b.clone(), options);
    let r = Tensor::<4>::random(y.dims(), Distribution::Default, device);
    let grads = (y.clone() * r).sum().backward();
    let mut out = vec![
        y.detach(),
        x.grad(&grads).expect("input gradient"),
        w.grad(&grads).expect("weight gradient"),
    ];
    if let Some(b) = b {
        out.push(
            b.grad(&grads)
                .expect("bias gradient")
                .reshape([1, 1, 1, c_out]),
        );
    }
    out
}

fn assert_matches_burn(device: &Device) {
    let ours_relu = |x, w, b, o| kdlens::conv::conv2d_activated(x, w, b, o, Activation::Relu);
    let burns_relu = |x, w, b, o| relu(module::conv2d(x, w, b, o));
    for (c, relu) in cases()
        .into_iter()
        .flat_map(|c| [(c.clone(), false), (c, true)])
    {
        let (ours, burns) = match relu {
            false => (
                run(kdlens::conv::conv2d, &c, device),
                run(module::conv2d, &c, device),
            ),
            true => (run(ours_relu, &c, device), run(burns_relu, &c, device)),
        };
        for (what, (a, b)) in ["output", "grad x", "grad weight", "grad bias"]
            .iter()
            .zip(ours.into_iter().zip(burns))
        {
            assert_eq!(a.dims(), b.dims(), "{what} shape");
            let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
            let diff = (a - b).abs().max().into_scalar::<f32>();
            assert!(
                diff <= 1e-4 * scale,
                "{what}: max difference {diff} (scale {scale}) for channels {:?} size {:?} kernel {} stride {} padding {:?} relu {relu}",
                c.channels,
                c.size,
                c.kernel,
                c.stride,
                c.padding
            );
        }
    }
}

#[test]
fn conv_matches_burn_on_flex() {
    assert_matches_burn(&Device::flex().autodiff());
}

/// On wgpu the forward is burn's own kernel; the backward is kdlens'.
#[test]
fn conv_matches_burn_on_wgpu_when_an_adapter_exists() {
    let device = match Device::wgpu_options().init() {
        Ok(device) => device,
        Err(e) => {
            eprintln!("SKIPPED conv on wgpu: no wgpu adapter on this machine ({e})");
            return;
        }
    };
    assert_matches_burn(&device.autodiff());
}
