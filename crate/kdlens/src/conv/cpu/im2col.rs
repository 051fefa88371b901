//! Convolution as a matrix product: `out[c_out, p] = W[c_out, k] × col[k, p]` per image, where
//! `col` lays out, for every output position `p`, the `k = c_in·kh·kw` input values its kernel
//! sees (zero in the padding). Any kernel size, stride, padding and dilation; a 1×1 stride-1
//! unpadded convolution uses the input itself as `col`.

use super::{
    Geometry,
    matmul::{MatRef, Threads, matmul},
    parallel::{for_each_chunk, thread_count},
};

/// Forward convolution into `out` (`[batch, c_out, out_h, out_w]`), bias added.
pub(super) fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &Geometry, out: &mut [f32]) {
    let (k, p) = (g.patch_len(), g.out_positions());
    let weights = MatRef::row_major(w, g.c_out, k);
    let image_len = g.c_in * g.in_size[0] * g.in_size[1];
    let run = |n: usize, out_n: &mut [f32], threads: Threads| {
        let x_n = &x[n * image_len..(n + 1) * image_len];
        let mut col = Vec::new();
        let col = if g.is_pointwise() {
            x_n
        } else {
            col.resize(k * p, 0.0);
            im2col(x_n, g, &mut col);
            &col
        };
        matmul(out_n, weights, MatRef::row_major(col, k, p), false, threads);
        if let Some(bias) = bias {
            for (row, &b) in out_n.chunks_mut(p).zip(bias) {
                row.iter_mut().for_each(|v| *v += b);
            }
        }
    };
    if g.batch >= thread_count() {
        for_each_chunk(out, g.c_out * p, |n, out_n| run(n, out_n, Threads::One));
    } else {
        for (n, out_n) in out.chunks_mut(g.c_out * p).enumerate() {
            run(n, out_n, Threads::All);
        }
    }
}

/// Weight gradient `dW[c_out, k] = Σₙ G[n][c_out, p] × colₙ[k, p]ᵀ`, `[c_out, c_in, kh, kw]`.
pub(super) fn weight_grad(x: &[f32], grad_out: &[f32], g: &Geometry) -> Vec<f32> {
    let (k, p) = (g.patch_len(), g.out_positions());
    let image_len = g.c_in * g.in_size[0] * g.in_size[1];
    let mut grad_w = vec![0.0; g.c_out * k];
    let mut col = vec![0.0; if g.is_pointwise() { 0 } else { k * p }];
    for n in 0..g.batch {
        let x_n = &x[n * image_len..(n + 1) * image_len];
        let col = if g.is_pointwise() {
            x_n
        } else {
            im2col(x_n, g, &mut col);
            &col
        };
        let grad_n = &grad_out[n * g.c_out * p..(n + 1) * g.c_out * p];
        matmul(
            &mut grad_w,
            MatRef::row_major(grad_n, g.c_out, p),
            MatRef::row_major(col, k, p).t(),
            n > 0,
            Threads::All,
        );
    }
    grad_w
}

/// Writes image `x_n` (`[c_in, h, w]`) as `col[k, p]`; every element of `col` is written.
fn im2col(x_n: &[f32], g: &Geometry, col: &mut [f32]) {
    let [h, w] = g.in_size;
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.out_size();
    let [sh, sw] = g.stride;
    let [dh, dw] = g.dilation;
    let [pt, pl] = g.pad_begin;
    let mut rows = col.chunks_mut(oh * ow);
    for ci in 0..g.c_in {
        let plane = &x_n[ci * h * w..(ci + 1) * h * w];
        for ky in 0..kh {
            for kx in 0..kw {
                let Some(row) = rows.next() else { return };
                for (oy, out_row) in row.chunks_mut(ow).enumerate() {
                    let iy = (oy * sh + ky * dh) as isize - pt as isize;
                    if iy < 0 || iy >= h as isize {
                        out_row.fill(0.0);
                        continue;
                    }
                    let in_row = &plane[iy as usize * w..(iy as usize + 1) * w];
                    let shift = (kx * dw) as isize - pl as isize;
                    if sw == 1 {
                        copy_shifted(in_row, shift, out_row);
                    } else {
                        for (ox, v) in out_row.iter_mut().enumerate() {
                            let ix = (ox * sw) as isize + shift;
                            *v = if ix >= 0 && ix < w as isize {
                                in_row[ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

/// `out[i] = row[i + shift]`, zero where that falls outside `row`.
fn copy_shifted(row: &[f32], shift: isize, out: &mut [f32]) {
    let n = out.len() as isize;
    let start = (-shift).clamp(0, n);
    let end = (row.len() as isize - shift).clamp(start, n);
    out[..start as usize].fill(0.0);
    out[start as usize..end as usize]
        .copy_from_slice(&row[(start + shift) as usize..(end + shift) as usize]);
    out[end as usize..].fill(0.0);
}
