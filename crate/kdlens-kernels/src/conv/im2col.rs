//! Convolution as a matrix product: `out[c_out, p] = W[c_out, k] × col[k, p]` per image, where
//! `col` lays out, for every output position `p`, the `k = c_in·kh·kw` input values its kernel
//! sees (zero in the padding). Any kernel size, stride, padding and dilation; a 1×1 stride-1
//! unpadded convolution uses the input itself as `col`.

use super::{
    Epilogue, Geometry,
    microkernel::{Rows, multiply, multiply_into},
    scratch::with_buffer,
};
use crate::{
    parallel::{SharedOut, for_each_chunk, for_each_index, thread_count},
    simd::{Path, per_path},
};

/// Output positions per step of the weight gradient's sum, so that a step's slice of the output
/// gradient stays in cache while every row of `col` passes over it.
const POSITIONS_PER_STEP: usize = 256;

/// Forward convolution into `out` (`[batch, c_out, out_h, out_w]`), finished by `epilogue`.
pub(super) fn forward(
    path: Path,
    x: &[f32],
    w: &[f32],
    epilogue: Epilogue<'_>,
    g: &Geometry,
    out: &mut [f32],
) {
    let (k, p) = (g.patch_len(), g.out_positions());
    let image_len = g.c_in * g.in_size[0] * g.in_size[1];
    let run = |n: usize, out_n: &mut [f32], split: bool| {
        let x_n = &x[n * image_len..(n + 1) * image_len];
        with_columns(path, x_n, g, split, |col| {
            let (w, col) = (Rows::new(w, k), Rows::new(col, p));
            if split {
                multiply_by_columns(path, out_n, w, col, [g.c_out, k, p]);
            } else {
                multiply(path, out_n, w, col, [g.c_out, k, p], false);
            }
        });
        if !epilogue.is_identity() {
            finish(path, out_n, p, epilogue);
        }
    };
    if g.batch >= thread_count() {
        for_each_chunk(out, g.c_out * p, |n, out_n| run(n, out_n, false));
    } else {
        for (n, out_n) in out.chunks_mut(g.c_out * p).enumerate() {
            run(n, out_n, true);
        }
    }
}

per_path! {
    /// `out_n` (`[c_out, p]`) finished by `epilogue`, channel by channel.
    fn finish(path: Path, out_n: &mut [f32], p: usize, epilogue: Epilogue<'_>) {
        for (c, row) in out_n.chunks_mut(p).enumerate() {
            row.iter_mut().for_each(|v| *v = epilogue.finish(c, *v));
        }
    }
}

/// Columns per piece when one product is split across threads: a few pieces per thread, each a
/// multiple of the kernel's 32 columns.
fn piece_width(n: usize) -> usize {
    n.div_ceil(4 * thread_count()).next_multiple_of(32).max(32)
}

/// `dst = a × b` (`[m, k] × [k, n]`, `dst` row-major `[m, n]`), pieces of columns in parallel.
fn multiply_by_columns(
    path: Path,
    dst: &mut [f32],
    a: Rows<'_>,
    b: Rows<'_>,
    [m, k, n]: [usize; 3],
) {
    assert!(dst.len() >= m * n, "multiply: dst too short");
    let width = piece_width(n);
    if m == 0 || n == 0 {
        return;
    }
    // Pieces write disjoint columns.
    let dst = SharedOut::new(&mut dst[..m * n]);
    for_each_index(n.div_ceil(width), |piece| {
        let j = piece * width;
        let cols = width.min(n - j);
        let b = Rows::new(&b.data[j..], b.ld);
        let first = dst.at(j, (m - 1) * n + cols);
        // SAFETY: this piece reads and writes columns j .. j + cols of the m rows of `dst`
        // (inside it: `at` checks the last one), which no other piece touches.
        unsafe { multiply_into(path, first, n, a, b, [m, k, cols], false) };
    });
}

/// Weight gradient `dW[c_out, k] = Σₙ Gₙ[c_out, p] × colₙ[k, p]ᵀ`, `[c_out, c_in, kh, kw]`:
/// computed transposed, `dWᵀ[k, c_out] = Σₙ colₙ × Gₙᵀ`, so that both operands stream row by
/// row; pieces of rows of `dWᵀ` run in parallel, each summing over positions in cache-sized steps.
pub(super) fn weight_grad(path: Path, x: &[f32], grad_out: &[f32], g: &Geometry) -> Vec<f32> {
    let (k, p, c_out) = (g.patch_len(), g.out_positions(), g.c_out);
    let image_len = g.c_in * g.in_size[0] * g.in_size[1];
    let mut grad_wt = vec![0.0; k * c_out];
    let rows_per_piece = k.div_ceil(4 * thread_count()).next_multiple_of(8);
    for n in 0..g.batch {
        let grad_t = transpose(
            path,
            &grad_out[n * c_out * p..(n + 1) * c_out * p],
            c_out,
            p,
        );
        with_columns(
            path,
            &x[n * image_len..(n + 1) * image_len],
            g,
            true,
            |col| {
                for_each_chunk(&mut grad_wt, rows_per_piece * c_out, |piece, dst| {
                    let (first, rows) = (piece * rows_per_piece, dst.len() / c_out);
                    for start in (0..p).step_by(POSITIONS_PER_STEP) {
                        let len = POSITIONS_PER_STEP.min(p - start);
                        multiply(
                            path,
                            dst,
                            Rows::new(&col[first * p + start..], p),
                            Rows::new(&grad_t[start * c_out..], c_out),
                            [rows, len, c_out],
                            n > 0 || start > 0,
                        );
                    }
                })
            },
        );
    }
    transpose(path, &grad_wt, k, c_out)
}

per_path! {
    /// `m` row-major `[rows, cols]` → `[cols, rows]`, in 16 × 16 blocks so that reads and writes
    /// both stay within a few cache lines.
    fn transpose(path: Path, m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        const BLOCK: usize = 16;
        let mut t = vec![0.0; rows * cols];
        for i0 in (0..rows).step_by(BLOCK) {
            for j0 in (0..cols).step_by(BLOCK) {
                for i in i0..(i0 + BLOCK).min(rows) {
                    for j in j0..(j0 + BLOCK).min(cols) {
                        t[j * rows + i] = m[i * cols + j];
                    }
                }
            }
        }
        t
    }
}

/// Runs `f` on `col[k, p]` of image `x_n`: the image itself for a pointwise layer, else built in
/// a reused buffer (its rows in parallel with `parallel`).
fn with_columns<R>(
    path: Path,
    x_n: &[f32],
    g: &Geometry,
    parallel: bool,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    if g.is_pointwise() {
        return f(x_n);
    }
    let (k, p) = (g.patch_len(), g.out_positions());
    with_buffer(k * p, |col| {
        if parallel {
            // Rows per task: a few tasks per thread, and at least ~16 K elements each.
            let rows = k
                .div_ceil(4 * thread_count())
                .max((1 << 14) / p.max(1))
                .max(1);
            for_each_chunk(col, rows * p, |task, out| {
                fill_rows(path, x_n, g, task * rows, out)
            });
        } else {
            fill_rows(path, x_n, g, 0, col);
        }
        f(col)
    })
}

per_path! {
    /// Rows `first ..` of `col` for image `x_n`, into `out` (whole rows of `p` elements).
    fn fill_rows(path: Path, x_n: &[f32], g: &Geometry, first: usize, out: &mut [f32]) {
        let p = g.out_positions();
        for (i, out) in out.chunks_mut(p).enumerate() {
            im2col_row(x_n, g, first + i, out);
        }
    }
}

/// Writes row `r = (ci·kh + ky)·kw + kx` of `col` for image `x_n` (`[c_in, h, w]`): what kernel
/// tap `(ky, kx)` of channel `ci` sees at every output position. Every element of `out` is
/// written.
#[inline(always)]
fn im2col_row(x_n: &[f32], g: &Geometry, r: usize, out: &mut [f32]) {
    let [h, w] = g.in_size;
    let [kh, kw] = g.kernel;
    let [ow, sw] = [g.out_size()[1], g.stride[1]];
    let (ci, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
    let plane = &x_n[ci * h * w..(ci + 1) * h * w];
    let shift = (kx * g.dilation[1]) as isize - g.pad_begin[1] as isize;
    // Output columns whose input column `ox·sw + shift` lies inside the row.
    let first = ((-shift).max(0) as usize).div_ceil(sw).min(ow);
    let end = ((w as isize - shift).max(0) as usize)
        .div_ceil(sw)
        .clamp(first, ow);
    for (oy, out_row) in out.chunks_mut(ow).enumerate() {
        let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.pad_begin[0] as isize;
        if iy < 0 || iy >= h as isize {
            out_row.fill(0.0);
            continue;
        }
        let in_row = &plane[iy as usize * w..(iy as usize + 1) * w];
        out_row[..first].fill(0.0);
        out_row[end..].fill(0.0);
        if first < end {
            let start = (first * sw) as isize + shift;
            let taken = in_row[start as usize..].iter().step_by(sw);
            for (v, &x) in out_row[first..end].iter_mut().zip(taken) {
                *v = x;
            }
        }
    }
}
