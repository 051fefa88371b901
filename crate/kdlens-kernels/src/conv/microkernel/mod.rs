//! kdlens' matrix product for the convolutions: `dst (+)= a × b` with `a` `[m, k]`, `b` `[k, n]`
//! and `dst` `[m, n]`, all row-major with their own row strides. One register-blocked kernel per
//! vector unit, its tile sized for that unit's registers: AVX-512 8 rows × 32 columns, AVX2 + FMA
//! 6 × 16, NEON 8 × 12, WebAssembly's simd128 4 × 8; a plain loop for the scalar path and for the
//! columns a kernel leaves over. It neither packs nor copies its operands: the convolutions hand
//! it layouts it can stream.
//!
//! Written with `std::arch` intrinsics rather than a portable SIMD layer (`pulp`): each unit
//! wants its own tile shape and its own way with the last columns (AVX-512 masks, AVX2 masked
//! loads, NEON and simd128 narrower blocks), and `pulp` has no simd128 path for the page.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;

use crate::simd::Path;

/// A row-major matrix operand: element `(i, j)` at `data[i · ld + j]`.
#[derive(Clone, Copy)]
pub(super) struct Rows<'a> {
    pub data: &'a [f32],
    pub ld: usize,
}

impl<'a> Rows<'a> {
    /// Rows `ld` apart.
    pub fn new(data: &'a [f32], ld: usize) -> Self {
        Self { data, ld }
    }

    /// Whether `rows × cols` fit.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        cols <= self.ld && (rows == 0 || self.data.len() >= (rows - 1) * self.ld + cols)
    }
}

/// `dst = a × b` (or `dst += a × b` with `accumulate`), `dst` row-major `[m, n]`, on `path`.
///
/// # Panics
/// If a matrix does not fit in its slice.
pub(super) fn multiply(
    path: Path,
    dst: &mut [f32],
    a: Rows<'_>,
    b: Rows<'_>,
    [m, k, n]: [usize; 3],
    accumulate: bool,
) {
    assert!(dst.len() >= m * n, "multiply: dst too short");
    // SAFETY: `dst` holds rows 0 .. m of n elements each, and is borrowed mutably.
    unsafe { multiply_into(path, dst.as_mut_ptr(), n, a, b, [m, k, n], accumulate) }
}

/// [`multiply`] into `dst[i·ldd + j]`.
///
/// # Safety
/// `dst` must be valid for reads and writes at `i·ldd + j` for every `i < m`, `j < n`, and
/// nothing else may access those elements during the call; `path` must be one the CPU has.
///
/// # Panics
/// If `a` or `b` does not fit in its slice.
pub(super) unsafe fn multiply_into(
    path: Path,
    dst: *mut f32,
    ldd: usize,
    a: Rows<'_>,
    b: Rows<'_>,
    [m, k, n]: [usize; 3],
    accumulate: bool,
) {
    assert!(
        a.holds(m, k) && b.holds(k, n),
        "multiply: operand outside its slice"
    );
    // SAFETY (every arm): `a` and `b` were checked above, the caller vouches for `dst` and for
    // the CPU having `path`. Each kernel does the columns it returns, the plain loop the rest.
    let done = match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { avx512::multiply(dst, ldd, a, b, [m, k, n], accumulate) },
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { avx2::multiply(dst, ldd, a, b, [m, k, n], accumulate) },
        #[cfg(target_arch = "aarch64")]
        Path::Neon => unsafe { neon::multiply(dst, ldd, a, b, [m, k, n], accumulate) },
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Path::Simd128 => unsafe { simd128::multiply(dst, ldd, a, b, [m, k, n], accumulate) },
        _ => 0,
    };
    // SAFETY: as above.
    unsafe { portable(dst, ldd, a, b, [m, k, n], accumulate, done) }
}

/// Columns `from .. n` of [`multiply_into`] as plain loops.
///
/// # Safety
/// As [`multiply_into`], with `a` and `b` already checked.
unsafe fn portable(
    dst: *mut f32,
    ldd: usize,
    a: Rows<'_>,
    b: Rows<'_>,
    [m, k, n]: [usize; 3],
    accumulate: bool,
    from: usize,
) {
    for i in 0..m {
        // SAFETY: row i, columns from .. n, are the caller's to use.
        let row = unsafe { std::slice::from_raw_parts_mut(dst.add(i * ldd + from), n - from) };
        if !accumulate {
            row.fill(0.0);
        }
        for (p, &av) in a.data[i * a.ld..i * a.ld + k].iter().enumerate() {
            for (d, &bv) in row.iter_mut().zip(&b.data[p * b.ld + from..p * b.ld + n]) {
                *d += av * bv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::available;

    /// Shapes around every path's blocks: rows and columns one short of, at and past a tile, a
    /// single row or column, an empty sum.
    const SHAPES: [[usize; 3]; 10] = [
        [1, 1, 1],
        [8, 5, 32],
        [9, 7, 33],
        [17, 3, 15],
        [16, 40, 70],
        [3, 0, 4],
        [6, 9, 16],
        [7, 11, 12],
        [13, 4, 29],
        [5, 6, 3],
    ];

    /// `multiply` of `[m, k] × [k, n]` operands with padded rows on `path`, from `start`.
    fn product(
        path: Path,
        [m, k, n]: [usize; 3],
        values: [&[f32]; 3],
        accumulate: bool,
    ) -> Vec<f32> {
        let [a, b, start] = values;
        let mut got = start.to_vec();
        multiply(
            path,
            &mut got,
            Rows::new(a, k + 2),
            Rows::new(b, n + 3),
            [m, k, n],
            accumulate,
        );
        got
    }

    #[test]
    fn every_path_matches_the_definition_on_every_shape_around_its_blocks() {
        for path in available() {
            for [m, k, n] in SHAPES {
                let (lda, ldb) = (k + 2, n + 3);
                // Small multiples of ½: every sum is exact in f32, in any order.
                let a: Vec<f32> = (0..m * lda).map(|v| (v % 7) as f32 - 3.0).collect();
                let b: Vec<f32> = (0..k.max(1) * ldb)
                    .map(|v| (v % 5) as f32 * 0.5 - 1.0)
                    .collect();
                let start: Vec<f32> = (0..m * n).map(|v| (v % 3) as f32).collect();
                for accumulate in [false, true] {
                    let got = product(path, [m, k, n], [&a, &b, &start], accumulate);
                    for i in 0..m {
                        for j in 0..n {
                            let sum: f32 = (0..k).map(|p| a[i * lda + p] * b[p * ldb + j]).sum();
                            let want = if accumulate {
                                start[i * n + j] + sum
                            } else {
                                sum
                            };
                            assert_eq!(
                                got[i * n + j],
                                want,
                                "{path} [{m}, {k}, {n}] at ({i}, {j})"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_path_agrees_with_the_scalar_path_within_1e_5_relative() {
        let shape @ [m, k, n] = [23, 300, 45];
        let mut s = 7u32;
        let mut next = move || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        };
        let a: Vec<f32> = (0..m * (k + 2)).map(|_| next()).collect();
        let b: Vec<f32> = (0..k * (n + 3)).map(|_| next()).collect();
        let start: Vec<f32> = (0..m * n).map(|_| next()).collect();
        let reference = product(Path::Scalar, shape, [&a, &b, &start], true);
        for path in available() {
            let got = product(path, shape, [&a, &b, &start], true);
            for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
                // Relative to the sum of magnitudes, the scale of a dot product's rounding.
                let (row, col) = (i / n, i % n);
                let magnitude: f32 = start[i].abs()
                    + (0..k)
                        .map(|p| (a[row * (k + 2) + p] * b[p * (n + 3) + col]).abs())
                        .sum::<f32>();
                assert!(
                    (g - r).abs() <= 1e-5 * magnitude,
                    "{path} at {i}: {g} against scalar {r}"
                );
            }
        }
    }
}
