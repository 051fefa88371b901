//! The kernels against the definition of a convolution, computed naively in `f64`, on every
//! vector path the machine has.

use super::*;
use crate::simd::available;

/// A small deterministic generator (the kernels' tests need no statistical quality).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Input position read by output position `o` through kernel tap `k` along dimension `d`.
fn source(g: &Geometry, d: usize, o: usize, k: usize) -> Option<usize> {
    let i = (o * g.stride[d] + k * g.dilation[d]) as isize - g.pad_begin[d] as isize;
    (i >= 0 && (i as usize) < g.in_size[d]).then_some(i as usize)
}

/// Calls `f(n, co, ci, oy, ox, ky, kx, iy, ix)` for every product term of the convolution.
fn for_each_term(g: &Geometry, mut f: impl FnMut([usize; 9])) {
    let [oh, ow] = g.out_size();
    for n in 0..g.batch {
        for co in 0..g.c_out {
            for ci in 0..g.c_in {
                for oy in 0..oh {
                    for ox in 0..ow {
                        for ky in 0..g.kernel[0] {
                            for kx in 0..g.kernel[1] {
                                if let (Some(iy), Some(ix)) =
                                    (source(g, 0, oy, ky), source(g, 1, ox, kx))
                                {
                                    f([n, co, ci, oy, ox, ky, kx, iy, ix]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

struct Indexing(Geometry);

impl Indexing {
    fn x(&self, [n, _, ci, _, _, _, _, iy, ix]: [usize; 9]) -> usize {
        let g = &self.0;
        ((n * g.c_in + ci) * g.in_size[0] + iy) * g.in_size[1] + ix
    }
    fn w(&self, [_, co, ci, _, _, ky, kx, _, _]: [usize; 9]) -> usize {
        let g = &self.0;
        ((co * g.c_in + ci) * g.kernel[0] + ky) * g.kernel[1] + kx
    }
    fn y(&self, [n, co, _, oy, ox, _, _, _, _]: [usize; 9]) -> usize {
        let g = &self.0;
        let [oh, ow] = g.out_size();
        ((n * g.c_out + co) * oh + oy) * ow + ox
    }
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= 1e-5 * scale,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

/// Forward (with and without ReLU), input and weight gradient of `g` on every path.
fn check(g: Geometry, with_bias: bool) {
    let ix = Indexing(g);
    let x = values(g.input_len(), 1);
    let w = values(g.weight_len(), 2);
    let bias = with_bias.then(|| values(g.c_out, 3));
    let grad_out = values(g.output_len(), 4);

    let mut y = vec![0.0f64; g.output_len()];
    let mut grad_x = vec![0.0f64; g.input_len()];
    let mut grad_w = vec![0.0f64; g.weight_len()];
    for_each_term(&g, |t| {
        y[ix.y(t)] += x[ix.x(t)] as f64 * w[ix.w(t)] as f64;
        grad_x[ix.x(t)] += grad_out[ix.y(t)] as f64 * w[ix.w(t)] as f64;
        grad_w[ix.w(t)] += grad_out[ix.y(t)] as f64 * x[ix.x(t)] as f64;
    });
    if let Some(bias) = &bias {
        let p = g.out_positions();
        for (i, v) in y.iter_mut().enumerate() {
            *v += bias[(i / p) % g.c_out] as f64;
        }
    }
    let rectified: Vec<f64> = y.iter().map(|v| v.max(0.0)).collect();
    for path in available() {
        let what = format!("{path}: {g:?} bias={with_bias}");
        let terms = Terms {
            x: &x,
            w: &w,
            bias: bias.as_deref(),
            grad_out: &grad_out,
        };
        let want = [&y[..], &rectified, &grad_x, &grad_w];
        check_path(path, g, terms, want, &what);
    }
}

/// The operands of a test convolution.
struct Terms<'a> {
    x: &'a [f32],
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    grad_out: &'a [f32],
}

/// `g` on `path` against its definition: `[forward, forward + ReLU, input grad, weight grad]`.
fn check_path(path: Path, g: Geometry, terms: Terms<'_>, want: [&[f64]; 4], what: &str) {
    let Terms {
        x,
        w,
        bias,
        grad_out,
    } = terms;
    let [y, rectified, grad_x, grad_w] = want;
    assert_close(
        &forward(path, x, w, Epilogue { bias, relu: false }, &g),
        y,
        &format!("forward {what}"),
    );
    assert_close(
        &forward(path, x, w, Epilogue { bias, relu: true }, &g),
        rectified,
        &format!("forward + ReLU {what}"),
    );
    assert_close(
        &weight_grad(path, x, grad_out, &g),
        grad_w,
        &format!("weight grad {what}"),
    );
    match input_grad(path, w, grad_out, &g) {
        Some(got) => assert_close(&got, grad_x, &format!("input grad {what}")),
        // Only strided layers and padding wider than the kernel take burn's path.
        None => assert!(
            g.stride != [1, 1]
                || g.pad_begin
                    .iter()
                    .chain(&g.pad_end)
                    .any(|&p| p >= g.kernel[0]),
            "no input gradient for {what}"
        ),
    }
}

fn geometry(batch: usize, c: [usize; 2], in_size: [usize; 2], k: usize, pad: usize) -> Geometry {
    Geometry {
        batch,
        c_in: c[0],
        c_out: c[1],
        in_size,
        kernel: [k, k],
        stride: [1, 1],
        pad_begin: [pad, pad],
        pad_end: [pad, pad],
        dilation: [1, 1],
    }
}

#[test]
fn winograd_3x3_layers_match_the_definition() {
    // Odd and even sizes, batch > 1, channel counts off the SIMD widths, padding 0, 1 and 2.
    for (g, bias) in [
        (geometry(1, [8, 64], [8, 8], 3, 1), true),
        (geometry(2, [9, 65], [7, 11], 3, 1), false),
        (geometry(1, [10, 20], [17, 16], 3, 1), true),
        (geometry(3, [17, 70], [5, 6], 3, 0), true),
        (geometry(1, [12, 64], [9, 4], 3, 2), true),
        (geometry(2, [32, 96], [15, 13], 3, 1), true),
    ] {
        assert!(winograd::applies(&g));
        check(g, bias);
    }
}

#[test]
fn general_layers_match_the_definition() {
    let mut strided = geometry(2, [3, 8], [13, 10], 7, 3);
    strided.stride = [2, 2];
    let mut asymmetric = geometry(1, [5, 6], [9, 8], 3, 1);
    asymmetric.pad_end = [0, 2];
    let mut dilated = geometry(2, [4, 3], [11, 9], 3, 2);
    dilated.dilation = [2, 2];
    let mut uneven = geometry(1, [6, 4], [10, 12], 3, 1);
    uneven.stride = [2, 1];
    for (g, bias) in [
        (geometry(2, [3, 32], [12, 9], 3, 1), true), // too few input channels for Winograd
        (geometry(2, [16, 32], [9, 10], 3, 1), false), // too little work for Winograd
        (geometry(3, [20, 11], [6, 5], 1, 0), false), // pointwise: the input is the matrix
        (geometry(1, [7, 9], [5, 5], 1, 1), true),
        (geometry(2, [4, 5], [8, 7], 5, 2), true),
        (strided, false),
        (asymmetric, true),
        (dilated, true),
        (uneven, false),
    ] {
        check(g, bias);
    }
}

#[test]
fn shifted_layers_match_the_definition() {
    // DenseNet's 3×3 shape, channel counts off the SIMD widths, grid rows not a multiple of the
    // pieces, batch > 1, padding 0, 1, 2 and uneven, a 5×5 kernel.
    let mut uneven = geometry(1, [64, 24], [16, 16], 3, 1);
    uneven.pad_begin = [0, 1];
    uneven.pad_end = [2, 0];
    for (g, bias) in [
        (geometry(2, [128, 32], [28, 28], 3, 1), false),
        (geometry(1, [64, 17], [15, 17], 3, 1), true),
        (geometry(3, [65, 63], [17, 16], 3, 0), true),
        (geometry(1, [70, 40], [14, 13], 3, 2), false),
        (geometry(2, [64, 16], [14, 14], 5, 2), true),
        (uneven, true),
    ] {
        assert_eq!(Kernel::for_geometry(&g), Kernel::Shifted, "{g:?}");
        check(g, bias);
    }
    // Its weights, packed once, give the same outputs as packed on the fly.
    let g = geometry(1, [64, 32], [14, 14], 3, 1);
    let (x, w) = (values(g.input_len(), 5), values(g.weight_len(), 6));
    let packed = PackedWeights::new(&w, &g).expect("the shifted kernel packs its weights");
    for path in available() {
        assert_eq!(
            forward_packed(path, &x, &packed, Epilogue::default(), &g),
            forward(path, &x, &w, Epilogue::default(), &g)
        );
    }
}

#[test]
fn each_layer_of_the_models_gets_its_measured_kernel() {
    let dense_3x3 = |side| geometry(1, [128, 32], [side, side], 3, 1);
    assert_eq!(Kernel::for_geometry(&dense_3x3(56)), Kernel::Shifted);
    assert_eq!(Kernel::for_geometry(&dense_3x3(14)), Kernel::Shifted);
    assert_eq!(Kernel::for_geometry(&dense_3x3(7)), Kernel::Im2col);
    let student = |c: [usize; 2], side| geometry(1, c, [side, side], 3, 1);
    assert_eq!(Kernel::for_geometry(&student([3, 32], 224)), Kernel::Im2col);
    assert_eq!(
        Kernel::for_geometry(&student([32, 64], 112)),
        Kernel::Winograd
    );
    assert_eq!(
        Kernel::for_geometry(&student([256, 512], 14)),
        Kernel::Winograd
    );
    let pointwise = geometry(1, [256, 32], [56, 56], 1, 0);
    assert_eq!(Kernel::for_geometry(&pointwise), Kernel::Im2col);
}
