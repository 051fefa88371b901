//! Direct convolution as a sum of shifted matrix products, for stride-1, undilated layers.
//!
//! With the input zero-padded once into `xp[c_in, hp, wp]`, every output on the padded-width
//! grid `o[c_out, y·wp + x]` is `Σ_(ky, kx) W[:, :, ky, kx] × xp[:, (y + ky)·wp + x + kx]`: one
//! `[c_out, c_in] × [c_in, oh·wp]` product per kernel tap, whose second operand is the padded
//! input itself read from offset `ky·wp + kx`. No im2col matrix and no transforms are built, so
//! it beats both where the products are narrow — DenseNet's 3×3 layers, 128 → 32 channels,
//! where Winograd's input transform costs as much as its products. The `wp − ow` grid columns
//! past each output row are computed and dropped.

use super::{
    Epilogue, Geometry,
    microkernel::{Rows, multiply_into},
    scratch::with_buffer,
};
use crate::{
    parallel::{SharedOut, for_each_index, thread_count},
    simd::{Path, per_path},
};

/// Whether `g` is a convolution this kernel computes: stride 1, no dilation, a kernel larger than
/// 1×1, many input channels, few output channels (16 to 63: too few to pay for Winograd's
/// transforms, enough to fill the microkernel's rows) and at least 14² outputs. Measured with
/// the `conv_paths` example on DenseNet's 3×3 layers (128 → 32 channels, 2 threads), shifted
/// against the kernel those layers had before: 56² 1.66–1.72 against 1.61–2.23 ms (Winograd),
/// 28² 0.56 against 0.58–0.89 ms (Winograd), 14² 0.24 against 0.27–0.31 ms (im2col), 7²
/// 0.16–0.20 against 0.11–0.12 ms (im2col, kept); on the students' layers (64 or more output
/// channels) Winograd was 1.5–3× faster. Other kernel sizes and the input gradients that fall
/// under this rule (e.g. the student's conv2, 64 → 32 at 112²) were not measured separately.
pub(super) fn applies(g: &Geometry) -> bool {
    g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.kernel != [1, 1]
        && g.c_in >= 64
        && (16..64).contains(&g.c_out)
        && g.out_positions() >= 14 * 14
}

/// The weights regrouped by tap: `taps[ky·kw + kx][co][ci] = w[co][ci][ky][kx]`.
pub(super) fn group_by_tap(w: &[f32], g: &Geometry) -> Vec<f32> {
    let taps = g.kernel[0] * g.kernel[1];
    let mut grouped = vec![0.0; w.len()];
    for (pair, kernel) in w.chunks_exact(taps).enumerate() {
        for (t, &value) in kernel.iter().enumerate() {
            grouped[t * g.c_out * g.c_in + pair] = value;
        }
    }
    grouped
}

/// The padded input's row length and plane size (`hp · wp`) of `g`.
fn padded(g: &Geometry) -> (usize, usize) {
    let hp = g.in_size[0] + g.pad_begin[0] + g.pad_end[0];
    let wp = g.in_size[1] + g.pad_begin[1] + g.pad_end[1];
    (wp, hp * wp)
}

/// Forward convolution into `out` (`[batch, c_out, out_h, out_w]`), finished by `epilogue`, with
/// weights regrouped by [`group_by_tap`].
pub(super) fn forward(
    path: Path,
    x: &[f32],
    taps: &[f32],
    epilogue: Epilogue<'_>,
    g: &Geometry,
    out: &mut [f32],
) {
    let (wp, plane) = padded(g);
    let [oh, ow] = g.out_size();
    let grid = oh * wp;
    // The last tap of the last channel reads `kw − 1` floats past the padded plane.
    let padded_len = g.c_in * plane + g.kernel[1] - 1;
    let image_len = g.c_in * g.in_size[0] * g.in_size[1];
    for (n, out_n) in out.chunks_mut(g.c_out * oh * ow).enumerate() {
        with_buffer(padded_len, |xp| {
            pad_image(&x[n * image_len..][..image_len], g, xp);
            grid_product(path, xp, taps, epilogue, g, [wp, grid], out_n);
        });
    }
}

/// `x` (`[c_in, h, w]`) into `xp` with `g`'s zero padding, and zeros after the last plane.
fn pad_image(x: &[f32], g: &Geometry, xp: &mut [f32]) {
    let [h, w] = g.in_size;
    let [pt, pl] = g.pad_begin;
    let (wp, plane) = padded(g);
    xp.fill(0.0);
    for (ci, channel) in x.chunks_exact(h * w).enumerate() {
        for (y, row) in channel.chunks_exact(w).enumerate() {
            xp[ci * plane + (pt + y) * wp + pl..][..w].copy_from_slice(row);
        }
    }
}

/// The products of every tap over pieces of the output grid (in parallel), each piece finished
/// and written into `out_n` (`[c_out, oh, ow]`).
fn grid_product(
    path: Path,
    xp: &[f32],
    taps: &[f32],
    epilogue: Epilogue<'_>,
    g: &Geometry,
    [wp, grid]: [usize; 2],
    out_n: &mut [f32],
) {
    let (plane, tap_len) = (padded(g).1, g.c_out * g.c_in);
    let width = grid
        .div_ceil(4 * thread_count())
        .next_multiple_of(32)
        .clamp(32, 512);
    // Pieces write the outputs of disjoint grid columns.
    let out = SharedOut::new(out_n);
    for_each_index(grid.div_ceil(width), |piece| {
        let j = piece * width;
        let cols = width.min(grid - j);
        with_buffer(g.c_out * cols, |acc| {
            for (t, a) in taps.chunks_exact(tap_len).enumerate() {
                let offset = (t / g.kernel[1]) * wp + t % g.kernel[1];
                let b = Rows::new(&xp[offset + j..], plane);
                // SAFETY: `acc` holds `c_out` rows of `cols` floats and is this piece's alone.
                unsafe {
                    multiply_into(
                        path,
                        acc.as_mut_ptr(),
                        cols,
                        Rows::new(a, g.c_in),
                        b,
                        [g.c_out, g.c_in, cols],
                        t > 0,
                    )
                };
            }
            write_piece(path, acc, [j, cols, wp], epilogue, g, &out);
        });
    });
}

per_path! {
    /// The products `acc` (`[c_out, cols]`, grid columns `j .. j + cols`) finished by `epilogue`
    /// into the output positions they hold; the grid columns past each output row are dropped.
    fn write_piece(
        path: Path,
        acc: &[f32],
        piece: [usize; 3],
        epilogue: Epilogue<'_>,
        g: &Geometry,
        out: &SharedOut,
    ) {
        let [j, cols, wp] = piece;
        let [oh, ow] = g.out_size();
        for (co, row) in acc.chunks_exact(cols).enumerate() {
            let dst = out.at(co * oh * ow, oh * ow);
            for (i, &value) in row.iter().enumerate() {
                let (y, x) = ((j + i) / wp, (j + i) % wp);
                if x < ow {
                    // SAFETY: `(y, x)` is an output of this piece's grid columns, which no other
                    // piece writes; `at` checked the channel's extent.
                    unsafe { *dst.add(y * ow + x) = epilogue.finish(co, value) };
                }
            }
        }
    }
}
