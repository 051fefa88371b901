//! Convolution as a matrix product: `out[c_out, p] = W[c_out, k] × col[k, p]` per image, where
//! `col` lays out, for every output position `p`, the `k = c_in·kh·kw` input values its kernel
//! sees (zero in the padding). Any kernel size, stride, padding and dilation; a 1×1 stride-1
//! unpadded convolution uses the input itself as `col`.

use super::{
    Geometry,
    microkernel::{Rows, multiply, multiply_into},
    parallel::{for_each_chunk, for_each_index, thread_count},
};

/// Output positions per step of the weight gradient's sum, so that a step's slice of the output
/// gradient stays in cache while every row of `col` passes over it.
const POSITIONS_PER_STEP: usize = 256;

/// Forward convolution into `out` (`[batch, c_out, out_h, out_w]`), bias added.
pub(super) fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &Geometry, out: &mut [f32]) {
    let (k, p) = (g.patch_len(), g.out_positions());
    let image_len = g.c_in * g.in_size[0] * g.in_size[1];
    let run = |n: usize, out_n: &mut [f32], split: bool| {
        let x_n = &x[n * image_len..(n + 1) * image_len];
        let col = columns(x_n, g, split && g.c_in >= 2 * thread_count());
        let (w, col) = (Rows::new(w, k), Rows::new(&col, p));
        if split {
            multiply_by_columns(out_n, w, col, [g.c_out, k, p]);
        } else {
            multiply(out_n, w, col, [g.c_out, k, p], false);
        }
        if let Some(bias) = bias {
            for (row, &b) in out_n.chunks_mut(p).zip(bias) {
                row.iter_mut().for_each(|v| *v += b);
            }
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

/// Columns per piece when one product is split across threads: a few pieces per thread, each a
/// multiple of the kernel's 32 columns.
fn piece_width(n: usize) -> usize {
    n.div_ceil(4 * thread_count()).next_multiple_of(32).max(32)
}

/// `dst = a × b` (`[m, k] × [k, n]`, `dst` row-major `[m, n]`), pieces of columns in parallel.
fn multiply_by_columns(dst: &mut [f32], a: Rows<'_>, b: Rows<'_>, [m, k, n]: [usize; 3]) {
    assert!(dst.len() >= m * n, "multiply: dst too short");
    let width = piece_width(n);
    let dst = SharedOut(dst.as_mut_ptr());
    for_each_index(n.div_ceil(width), |piece| {
        let j = piece * width;
        let cols = width.min(n - j);
        let b = Rows::new(&b.data[j..], b.ld);
        // SAFETY: this piece reads and writes columns j .. j + cols of the m rows of `dst`
        // (inside it: its length was checked above), which no other piece touches.
        unsafe { multiply_into(dst.column(j), n, a, b, [m, k, cols], false) };
    });
}

/// `dst` shared by pieces that use disjoint columns.
struct SharedOut(*mut f32);

impl SharedOut {
    /// Where column `j` of the first row is.
    fn column(&self, j: usize) -> *mut f32 {
        self.0.wrapping_add(j)
    }
}

// SAFETY: each piece uses its own columns only (see `multiply_by_columns`).
unsafe impl Sync for SharedOut {}
unsafe impl Send for SharedOut {}

/// Weight gradient `dW[c_out, k] = Σₙ Gₙ[c_out, p] × colₙ[k, p]ᵀ`, `[c_out, c_in, kh, kw]`:
/// computed transposed, `dWᵀ[k, c_out] = Σₙ colₙ × Gₙᵀ`, so that both operands stream row by
/// row; pieces of rows of `dWᵀ` run in parallel, each summing over positions in cache-sized steps.
pub(super) fn weight_grad(x: &[f32], grad_out: &[f32], g: &Geometry) -> Vec<f32> {
    let (k, p, c_out) = (g.patch_len(), g.out_positions(), g.c_out);
    let image_len = g.c_in * g.in_size[0] * g.in_size[1];
    let mut grad_wt = vec![0.0; k * c_out];
    let rows_per_piece = k.div_ceil(4 * thread_count()).next_multiple_of(8);
    for n in 0..g.batch {
        let col = columns(&x[n * image_len..(n + 1) * image_len], g, true);
        let grad_t = transpose(&grad_out[n * c_out * p..(n + 1) * c_out * p], c_out, p);
        for_each_chunk(&mut grad_wt, rows_per_piece * c_out, |piece, dst| {
            let (first, rows) = (piece * rows_per_piece, dst.len() / c_out);
            for start in (0..p).step_by(POSITIONS_PER_STEP) {
                let len = POSITIONS_PER_STEP.min(p - start);
                multiply(
                    dst,
                    Rows::new(&col[first * p + start..], p),
                    Rows::new(&grad_t[start * c_out..], c_out),
                    [rows, len, c_out],
                    n > 0 || start > 0,
                );
            }
        });
    }
    transpose(&grad_wt, k, c_out)
}

/// `m` row-major `[rows, cols]` → `[cols, rows]`, in 16 × 16 blocks so that reads and writes
/// both stay within a few cache lines.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
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

/// `col[k, p]` of image `x_n`: the image itself for a pointwise layer, else built (rows of
/// channels in parallel with `parallel`).
fn columns<'a>(x_n: &'a [f32], g: &Geometry, parallel: bool) -> std::borrow::Cow<'a, [f32]> {
    if g.is_pointwise() {
        return std::borrow::Cow::Borrowed(x_n);
    }
    let (taps, p) = (g.kernel[0] * g.kernel[1], g.out_positions());
    let mut col = vec![0.0; g.patch_len() * p];
    let channel = |ci: usize, rows: &mut [f32]| im2col_channel(x_n, g, ci, rows);
    if parallel {
        for_each_chunk(&mut col, taps * p, channel);
    } else {
        col.chunks_mut(taps * p)
            .enumerate()
            .for_each(|(ci, rows)| channel(ci, rows));
    }
    std::borrow::Cow::Owned(col)
}

/// Writes the `kh·kw` rows of `col` that channel `ci` of image `x_n` (`[c_in, h, w]`) fills;
/// every element of `rows` is written.
fn im2col_channel(x_n: &[f32], g: &Geometry, ci: usize, rows: &mut [f32]) {
    let [h, w] = g.in_size;
    let [kh, kw] = g.kernel;
    let [oh, ow] = g.out_size();
    let [sh, sw] = g.stride;
    let [dh, dw] = g.dilation;
    let [pt, pl] = g.pad_begin;
    let plane = &x_n[ci * h * w..(ci + 1) * h * w];
    let mut rows = rows.chunks_mut(oh * ow);
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
