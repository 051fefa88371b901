//! Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, 2016) for 3×3 stride-1 convolutions:
//! each 2×2 block of outputs comes from a 4×4 input tile through
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`, so the channel sums become 16 matrix products of
//! `[c_out, c_in] × [c_in, tiles]` with 16 multiplications per 4 outputs instead of 36.
//!
//! Tiles of all images are processed in chunks sized for the cache; each chunk transforms its
//! tiles, multiplies, and writes its own outputs, so chunks run in parallel.

use super::{
    Epilogue, Geometry,
    microkernel::{Rows, multiply},
    scratch::with_buffer,
};
use crate::{
    parallel::{SharedOut, Threads, for_each_chunk, for_each_index, thread_count},
    simd::{Path, per_path},
};

/// Floats of scratch (transformed tiles and products) one chunk aims to stay within.
const CHUNK_SCRATCH: usize = 1 << 19;
/// Fewest tiles per chunk, so that the matrix products stay efficient.
const MIN_CHUNK_TILES: usize = 32;

/// Whether `g` is a convolution this kernel computes: 3×3, stride 1, no dilation, padding of at
/// most 2, and work enough for the 16 products to outweigh the transforms. The transforms cost
/// `c_in + c_out` per tile against `c_in · c_out` for the products, so layers with few output
/// channels gain only on large images (DenseNet's 128 → 32 layers: faster than one im2col
/// product at 56² and 28², slower at 14² and 7²; the shifted kernel, chosen before this one,
/// takes those layers from 14² up).
pub(super) fn applies(g: &Geometry) -> bool {
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.pad_begin.iter().chain(&g.pad_end).all(|&p| p <= 2)
        && g.c_in >= 8
        && (g.c_out >= 64 || g.out_positions() >= 256)
}

/// Forward convolution into `out` (`[batch, c_out, out_h, out_w]`), finished by `epilogue`, with
/// weights already transformed by [`transform_weights`].
pub(super) fn forward(
    path: Path,
    x: &[f32],
    u: &[f32],
    epilogue: Epilogue<'_>,
    g: &Geometry,
    out: &mut [f32],
) {
    let tiles = Tiles::new(g);
    // Chunks write disjoint outputs: each output element belongs to one tile, each tile to one
    // chunk.
    let out = SharedOut::new(out);
    let chunk = |first: usize, len: usize, threads: Threads| {
        with_buffer(16 * xi_stride(g.c_in * len), |v| {
            transform_input(path, x, g, &tiles, first, len, v);
            with_buffer(16 * xi_stride(g.c_out * len), |m| {
                products(path, u, v, g, len, threads, m);
                write_output(path, m, epilogue, g, &tiles, [first, len], &out);
            })
        })
    };
    match tiles.per_chunk(g.c_in + g.c_out) {
        // Few tiles (late layers, one image): one chunk, its 16 products side by side.
        None => chunk(0, tiles.count, Threads::All),
        Some(per_chunk) => for_each_index(tiles.count.div_ceil(per_chunk), |i| {
            let first = i * per_chunk;
            chunk(first, per_chunk.min(tiles.count - first), Threads::One)
        }),
    }
}

/// Floats between consecutive `ξ` blocks of a transformed array holding `block` floats per `ξ`:
/// padded by one cache line so that the 16 blocks do not map onto the same cache sets (blocks a
/// multiple of 4 KiB apart would evict each other on every tile).
fn xi_stride(block: usize) -> usize {
    block.next_multiple_of(16) + 16
}

/// `M[ξ] = U[ξ] × V[ξ]` for the 16 `ξ` into `m`: `[c_out, len]` each, at [`xi_stride`] apart.
/// With `Threads::All` the 16 products run in parallel.
fn products(
    path: Path,
    u: &[f32],
    v: &[f32],
    g: &Geometry,
    len: usize,
    threads: Threads,
    m: &mut [f32],
) {
    let (u_stride, v_stride) = (xi_stride(g.c_out * g.c_in), xi_stride(g.c_in * len));
    let m_stride = xi_stride(g.c_out * len);
    let product = |xi: usize, m_xi: &mut [f32]| {
        multiply(
            path,
            m_xi,
            Rows::new(&u[xi * u_stride..][..g.c_out * g.c_in], g.c_in),
            Rows::new(&v[xi * v_stride..][..g.c_in * len], len),
            [g.c_out, g.c_in, len],
            false,
        )
    };
    match threads {
        Threads::All => for_each_chunk(m, m_stride, product),
        Threads::One => m
            .chunks_mut(m_stride)
            .enumerate()
            .for_each(|(xi, m_xi)| product(xi, m_xi)),
    }
}

/// The output tiles: `count = batch · rows · cols` blocks of 2×2 outputs.
struct Tiles {
    rows: usize,
    cols: usize,
    count: usize,
}

impl Tiles {
    fn new(g: &Geometry) -> Self {
        let [oh, ow] = g.out_size();
        let (rows, cols) = (oh.div_ceil(2), ow.div_ceil(2));
        Self {
            rows,
            cols,
            count: g.batch * rows * cols,
        }
    }

    /// Tiles per chunk: within the scratch budget, at least `MIN_CHUNK_TILES`, and with a chunk
    /// count that is a multiple of the thread count; `None` when all tiles fit the budget of fewer
    /// chunks than threads (then one chunk parallelises its products instead).
    fn per_chunk(&self, channels: usize) -> Option<usize> {
        let budget = (CHUNK_SCRATCH / (16 * channels)).max(MIN_CHUNK_TILES);
        let threads = thread_count().max(1);
        let chunks = self.count.div_ceil(budget);
        (chunks >= threads).then(|| self.count.div_ceil(chunks.next_multiple_of(threads)))
    }

    /// `(image, tile row, tile column)` of tile `t`.
    fn position(&self, t: usize) -> (usize, usize, usize) {
        let per_image = self.rows * self.cols;
        let (n, r) = (t / per_image, t % per_image);
        (n, r / self.cols, r % self.cols)
    }
}

/// `U[ξ][co][ci] = (G g Gᵀ)[ξ]` for every 3×3 kernel `g = w[co][ci]`, `G` = [[1,0,0], [½,½,½],
/// [½,−½,½], [0,0,1]].
pub(super) fn transform_weights(w: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let stride = xi_stride(c_out * c_in);
    let mut u = vec![0.0; 16 * stride];
    let g4 = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    for (pair, k) in w.chunks_exact(9).enumerate() {
        // Rows of G g (4×3), then each row times Gᵀ.
        let cols: [[f32; 4]; 3] = std::array::from_fn(|j| g4(k[j], k[3 + j], k[6 + j]));
        for i in 0..4 {
            let row = g4(cols[0][i], cols[1][i], cols[2][i]);
            for (j, &value) in row.iter().enumerate() {
                u[(i * 4 + j) * stride + pair] = value;
            }
        }
    }
    u
}

/// A run of consecutive chunk tiles along one tile row: chunk tiles `j0 .. j0 + count` are
/// image `n`, tile row `ty`, tile columns `tx0 ..`.
struct Run {
    j0: usize,
    n: usize,
    ty: usize,
    tx0: usize,
    count: usize,
}

/// The chunk's tiles `first .. first + len` as runs along tile rows.
fn runs(tiles: &Tiles, first: usize, len: usize) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut j0 = 0;
    while j0 < len {
        let (n, ty, tx0) = tiles.position(first + j0);
        let count = (tiles.cols - tx0).min(len - j0);
        runs.push(Run {
            j0,
            n,
            ty,
            tx0,
            count,
        });
        j0 += count;
    }
    runs
}

per_path! {
    /// `V[ξ][ci][j] = (Bᵀ d B)[ξ]` for the input tile `d` under chunk tile `j`, `Bᵀ` = [[1,0,−1,0],
    /// [0,1,1,0], [0,−1,1,0], [0,1,0,−1]]. Works a run of tiles at a time so that every step is a
    /// loop over neighbouring tiles (vectorised by the compiler). Every element `v` is read at is
    /// written.
    fn transform_input(
        path: Path,
        x: &[f32],
        g: &Geometry,
        tiles: &Tiles,
        first: usize,
        len: usize,
        v: &mut [f32],
    ) {
        let [h, w] = g.in_size;
        let [pt, pl] = g.pad_begin;
        let stride = xi_stride(g.c_in * len);
        let runs = runs(tiles, first, len);
        let widest = runs.iter().map(|r| r.count).max().unwrap_or(0);
        let mut row = vec![0.0; 2 * widest + 2];
        // `rb[r][k][l]`: input row `r` of tile `l` times `B`.
        let mut rb = vec![0.0; 16 * widest];
        for ci in 0..g.c_in {
            for run in &runs {
                let plane = &x[(run.n * g.c_in + ci) * h * w..][..h * w];
                let count = run.count;
                let left = (2 * run.tx0) as isize - pl as isize;
                for r in 0..4 {
                    let iy = (2 * run.ty + r) as isize - pt as isize;
                    let row = &mut row[..2 * count + 2];
                    if iy < 0 || iy >= h as isize {
                        row.fill(0.0);
                    } else {
                        let line = &plane[iy as usize * w..][..w];
                        copy_with_zeros(line, left, row);
                    }
                    let [b0, b1, b2, b3] = four_mut(&mut rb[r * 4 * widest..][..4 * widest], count);
                    for l in 0..count {
                        let d = &row[2 * l..2 * l + 4];
                        b0[l] = d[0] - d[2];
                        b1[l] = d[1] + d[2];
                        b2[l] = d[2] - d[1];
                        b3[l] = d[1] - d[3];
                    }
                }
                let at = |r: usize, k: usize| &rb[(r * 4 + k) * widest..][..count];
                for k in 0..4 {
                    let base = ci * len + run.j0;
                    let pairs = [(0, 2, -1.0), (1, 2, 1.0), (2, 1, -1.0), (1, 3, -1.0)];
                    for (i, &(ra, rb_, sign)) in pairs.iter().enumerate() {
                        let (a, b) = (at(ra, k), at(rb_, k));
                        let dst = &mut v[(i * 4 + k) * stride + base..][..count];
                        for l in 0..count {
                            dst[l] = a[l] + sign * b[l];
                        }
                    }
                }
            }
        }
    }
}

/// `out[i] = line[start + i]`, zero where that falls outside `line`.
#[inline(always)]
fn copy_with_zeros(line: &[f32], start: isize, out: &mut [f32]) {
    let n = out.len() as isize;
    let from = (-start).clamp(0, n);
    let to = (line.len() as isize - start).clamp(from, n);
    out[..from as usize].fill(0.0);
    out[from as usize..to as usize]
        .copy_from_slice(&line[(from + start) as usize..(to + start) as usize]);
    out[to as usize..].fill(0.0);
}

/// The first `count` elements of the four quarters of `buf`, mutably.
#[inline(always)]
fn four_mut(buf: &mut [f32], count: usize) -> [&mut [f32]; 4] {
    let quarter = buf.len() / 4;
    let (a, rest) = buf.split_at_mut(quarter);
    let (b, rest) = rest.split_at_mut(quarter);
    let (c, d) = rest.split_at_mut(quarter);
    [
        &mut a[..count],
        &mut b[..count],
        &mut c[..count],
        &mut d[..count],
    ]
}

per_path! {
    /// `Y = Aᵀ M A`, finished by `epilogue`, for each tile of the chunk `[first, len]` and output
    /// channel, `Aᵀ` = [[1,1,1,0], [0,1,−1,−1]], written where it falls inside the output; a run
    /// of tiles at a time, like the input.
    fn write_output(
        path: Path,
        m: &[f32],
        epilogue: Epilogue<'_>,
        g: &Geometry,
        tiles: &Tiles,
        chunk: [usize; 2],
        out: &SharedOut,
    ) {
        let [first, len] = chunk;
        let [oh, ow] = g.out_size();
        let stride = xi_stride(g.c_out * len);
        let runs = runs(tiles, first, len);
        let widest = runs.iter().map(|r| r.count).max().unwrap_or(0);
        let mut sums = vec![0.0; 4 * widest];
        let mut line = vec![0.0; 2 * widest];
        for co in 0..g.c_out {
            let b = epilogue.bias_of(co);
            for run in &runs {
                let count = run.count;
                let at = |xi: usize| &m[xi * stride + co * len + run.j0..][..count];
                let (oy, ox) = (2 * run.ty, 2 * run.tx0);
                for a in 0..2 {
                    if oy + a >= oh {
                        break;
                    }
                    // Row `a` of Aᵀ M: M₀ + M₁ + M₂, or M₁ − M₂ − M₃ (rows of M, column c).
                    let [s0, s1, s2, s3] = four_mut(&mut sums[..4 * widest], count);
                    for (c, s) in [s0, s1, s2, s3].into_iter().enumerate() {
                        let (m0, m1, m2, m3) = (at(c), at(4 + c), at(8 + c), at(12 + c));
                        if a == 0 {
                            for l in 0..count {
                                s[l] = m0[l] + m1[l] + m2[l];
                            }
                        } else {
                            for l in 0..count {
                                s[l] = m1[l] - m2[l] - m3[l];
                            }
                        }
                    }
                    let line = &mut line[..2 * count];
                    let (s0, s1, s2, s3) = (
                        &sums[..count],
                        &sums[widest..widest + count],
                        &sums[2 * widest..2 * widest + count],
                        &sums[3 * widest..3 * widest + count],
                    );
                    for l in 0..count {
                        line[2 * l] = epilogue.finish_biased(s0[l] + s1[l] + s2[l] + b);
                        line[2 * l + 1] = epilogue.finish_biased(s1[l] - s2[l] - s3[l] + b);
                    }
                    let width = (ow - ox).min(2 * count);
                    let index = (run.n * g.c_out + co) * oh * ow + (oy + a) * ow + ox;
                    // SAFETY: `index .. index + width` lies inside the output (`at` checks) and inside
                    // output row `oy + a` (`ox + width ≤ ow`); no other chunk writes it (see
                    // `forward`), and `line` is a separate allocation.
                    unsafe {
                        std::ptr::copy_nonoverlapping(line.as_ptr(), out.at(index, width), width)
                    };
                }
            }
        }
    }
}
