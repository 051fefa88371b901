//! Where the student's CPU time goes, layer by layer, on burn's `flex` backend at 224²: the 3×3
//! convolution as burn runs it, against a single matrix product of the same size (the work an
//! im2col convolution must do), plus ReLU and 2×2 max-pooling.
//!
//! `cargo run -p kdlens-cli --example conv_paths` (BENCHMARKS.md quotes its output). It lives in
//! the CLI crate so that burn is built with the CLI's CPU features (rayon threads, AVX-512).

use std::time::Instant;

use burn::{
    nn::pool::MaxPool2dConfig,
    tensor::{Device, Distribution, Tensor, module::conv2d, ops::ConvOptions},
};

fn median_ms(mut f: impl FnMut(), runs: usize) -> f64 {
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[runs / 2]
}

fn main() {
    let device = Device::flex();
    let channels = [3, 32, 64, 128, 256, 512];
    let mut side = 224;
    let (mut conv_total, mut gemm_total) = (0.0, 0.0);
    println!(
        "layer | c_in→c_out | side | GMAC | conv2d ms (GFLOP/s) | slices+gemm ms | gemm ms (GFLOP/s) | relu ms | pool ms | reshape-max pool ms"
    );
    for layer in 0..5 {
        let (c_in, c_out) = (channels[layer], channels[layer + 1]);
        let x = Tensor::<4>::random([1, c_in, side, side], Distribution::Default, &device);
        let w = Tensor::<4>::random([c_out, c_in, 3, 3], Distribution::Default, &device);
        let b = Tensor::<1>::random([c_out], Distribution::Default, &device);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let conv = median_ms(
            || {
                let y = conv2d(x.clone(), w.clone(), Some(b.clone()), options.clone());
                let _ = y.into_data();
            },
            7,
        );
        // The same convolution as nine shifted slices of the padded input and one matrix product.
        let sliced = median_ms(
            || {
                let padded = x
                    .clone()
                    .pad((1, 1, 1, 1), burn::tensor::ops::PadMode::Constant(0.0));
                let taps: Vec<Tensor<3>> = (0..3)
                    .flat_map(|dy| (0..3).map(move |dx| (dy, dx)))
                    .map(|(dy, dx)| {
                        padded
                            .clone()
                            .slice([0..1, 0..c_in, dy..dy + side, dx..dx + side])
                            .reshape([c_in, 1, side * side])
                    })
                    .collect();
                let cols = Tensor::cat(taps, 1).reshape([c_in * 9, side * side]);
                let y = w.clone().reshape([c_out, c_in * 9]).matmul(cols)
                    + b.clone().reshape([c_out, 1]);
                drop(y.reshape([1, c_out, side, side]).into_data());
            },
            7,
        );
        let a = Tensor::<2>::random([c_out, c_in * 9], Distribution::Default, &device);
        let cols = Tensor::<2>::random([c_in * 9, side * side], Distribution::Default, &device);
        let gemm = median_ms(
            || {
                let _ = a.clone().matmul(cols.clone()).into_data();
            },
            7,
        );
        let y = conv2d(x.clone(), w.clone(), Some(b.clone()), options.clone());
        let relu = median_ms(
            || drop(burn::tensor::activation::relu(y.clone()).into_data()),
            7,
        );
        let pooling = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let pool = median_ms(|| drop(pooling.forward(y.clone()).into_data()), 7);
        // The same 2×2 max-pool as two reductions over a reshaped view.
        let [_, c, h, w] = y.dims();
        let reshaped_pool = median_ms(
            || {
                let p = y
                    .clone()
                    .reshape([1, c, h / 2, 2, w / 2, 2])
                    .max_dim(5)
                    .max_dim(3);
                drop(p.into_data())
            },
            7,
        );
        let gmac = (c_out * c_in * 9 * side * side) as f64 / 1e9;
        println!(
            "conv{} | {c_in}→{c_out} | {side} | {gmac:.3} | {conv:.2} ({:.1}) | {sliced:.2} | {gemm:.2} ({:.1}) | {relu:.2} | {pool:.2} | {reshaped_pool:.2}",
            layer + 1,
            2.0 * gmac / conv * 1e3,
            2.0 * gmac / gemm * 1e3
        );
        conv_total += conv;
        gemm_total += gemm;
        side /= 2;
    }
    println!("total: conv2d {conv_total:.1} ms, gemm {gemm_total:.1} ms");
}
