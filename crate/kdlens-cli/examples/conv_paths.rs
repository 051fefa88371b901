//! Where the models' CPU time goes, layer by layer, on the `flex` backend: kdlens' convolution
//! (`kdlens::conv::conv2d`) against burn's `conv2d` and against one matrix product of the size an
//! im2col convolution needs (`[c_out, c_in·k²] × [c_in·k², h·w]`), forward and forward +
//! backward (input and weight gradients).
//!
//! `cargo run -p kdlens-cli --example conv_paths` (BENCHMARKS.md quotes its output). It lives in
//! the CLI crate so that burn is built with the CLI's CPU features (rayon threads, AVX-512).

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor, module, ops::ConvOptions};

type Conv = fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvOptions<2>) -> Tensor<4>;

/// Median wall time of `runs` calls after two warm-up calls, in milliseconds. Runs of the
/// `contenders` are interleaved so that drifts of the machine hit all of them alike.
fn interleaved_ms(contenders: &mut [&mut dyn FnMut()], runs: usize) -> Vec<f64> {
    for f in contenders.iter_mut() {
        f();
        f();
    }
    let mut times = vec![Vec::with_capacity(runs); contenders.len()];
    for _ in 0..runs {
        for (f, t) in contenders.iter_mut().zip(&mut times) {
            let start = Instant::now();
            f();
            t.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[runs / 2]
        })
        .collect()
}

struct Layer {
    name: &'static str,
    channels: [usize; 2],
    side: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    bias: bool,
}

const fn layer(name: &'static str, channels: [usize; 2], side: usize, kernel: usize) -> Layer {
    Layer {
        name,
        channels,
        side,
        kernel,
        stride: 1,
        padding: kernel / 2,
        bias: true,
    }
}

/// The student's five layers at 224² and DenseNet-121's kinds of convolution.
const LAYERS: [Layer; 12] = [
    layer("student conv1", [3, 32], 224, 3),
    layer("student conv2", [32, 64], 112, 3),
    layer("student conv3", [64, 128], 56, 3),
    layer("student conv4", [128, 256], 28, 3),
    layer("student conv5", [256, 512], 14, 3),
    Layer {
        stride: 2,
        bias: false,
        ..layer("densenet stem 7×7/2", [3, 64], 224, 7)
    },
    Layer {
        bias: false,
        ..layer("densenet 1×1 block1", [256, 128], 56, 1)
    },
    Layer {
        bias: false,
        ..layer("densenet 3×3 block1", [128, 32], 56, 3)
    },
    Layer {
        bias: false,
        ..layer("densenet 3×3 block2", [128, 32], 28, 3)
    },
    Layer {
        bias: false,
        ..layer("densenet 3×3 block3", [128, 32], 14, 3)
    },
    Layer {
        bias: false,
        ..layer("densenet 3×3 block4", [128, 32], 7, 3)
    },
    Layer {
        bias: false,
        ..layer("densenet 1×1 block4", [1024, 128], 7, 1)
    },
];

fn main() {
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|b| b.parse().ok())
        .unwrap_or(1);
    let device = Device::flex();
    println!(
        "batch {batch}, flex, {} threads",
        rayon::current_num_threads()
    );
    println!(
        "| layer | GMAC | burn ms (GFLOP/s) | kdlens ms (GFLOP/s) | GEMM bound ms (GFLOP/s) | burn fwd+bwd ms | kdlens fwd+bwd ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut totals = [0.0; 5];
    for l in &LAYERS {
        let [c_in, c_out] = l.channels;
        let k = l.kernel;
        let x = Tensor::<4>::random(
            [batch, c_in, l.side, l.side],
            Distribution::Default,
            &device,
        );
        let w = Tensor::<4>::random([c_out, c_in, k, k], Distribution::Default, &device);
        let b = l
            .bias
            .then(|| Tensor::<1>::random([c_out], Distribution::Default, &device));
        let options = ConvOptions::new([l.stride; 2], [l.padding; 2], [1, 1], 1);
        let out_side = (l.side + 2 * l.padding - k) / l.stride + 1;
        let positions = batch * out_side * out_side;
        let forward = |conv: Conv| {
            let (x, w, b, o) = (x.clone(), w.clone(), b.clone(), options.clone());
            move || drop(conv(x.clone(), w.clone(), b.clone(), o.clone()).into_data())
        };
        let train = |conv: Conv| {
            let (x, w, b, o) = (x.clone(), w.clone(), b.clone(), options.clone());
            let ad = device.clone().autodiff();
            move || {
                let x = Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
                let w = Tensor::<4>::from_data(w.to_data(), &ad).require_grad();
                let b = b
                    .clone()
                    .map(|b| Tensor::<1>::from_data(b.to_data(), &ad).require_grad());
                let grads = conv(x.clone(), w.clone(), b, o.clone()).sum().backward();
                drop(x.grad(&grads).map(|g| g.into_data()));
                drop(w.grad(&grads).map(|g| g.into_data()));
            }
        };
        let a = Tensor::<2>::random([c_out, c_in * k * k], Distribution::Default, &device);
        let cols = Tensor::<2>::random([c_in * k * k, positions], Distribution::Default, &device);
        let gemm = || drop(a.clone().matmul(cols.clone()).into_data());
        let times = interleaved_ms(
            &mut [
                &mut forward(module::conv2d),
                &mut forward(kdlens::conv::conv2d),
                &mut { gemm },
                &mut train(module::conv2d),
                &mut train(kdlens::conv::conv2d),
            ],
            7,
        );
        let gflop = 2.0 * (c_out * c_in * k * k * positions) as f64 / 1e9;
        let rate = |ms: f64| gflop / ms * 1e3;
        println!(
            "| {} | {:.3} | {:.2} ({:.0}) | {:.2} ({:.0}) | {:.2} ({:.0}) | {:.2} | {:.2} |",
            l.name,
            gflop / 2.0,
            times[0],
            rate(times[0]),
            times[1],
            rate(times[1]),
            times[2],
            rate(times[2]),
            times[3],
            times[4]
        );
        totals.iter_mut().zip(&times).for_each(|(t, v)| *t += v);
    }
    println!(
        "| total | | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        totals[0], totals[1], totals[2], totals[3], totals[4]
    );
}
