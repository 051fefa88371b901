//! kdlens' matrix product for the convolutions: `dst (+)= a × b` with `a` `[m, k]`, `b` `[k, n]`
//! and `dst` `[m, n]`, all row-major with their own row strides. Register-blocked for AVX-512
//! (8 rows × 32 columns of accumulators, detected at run time) and WebAssembly's simd128 (4 rows
//! × 8 columns); a plain loop the compiler vectorises elsewhere and for the columns left over. It neither packs nor copies its
//! operands: the convolutions hand it layouts it can stream.

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

/// `dst = a × b` (or `dst += a × b` with `accumulate`), `dst` row-major `[m, n]`.
///
/// # Panics
/// If a matrix does not fit in its slice.
pub(super) fn multiply(
    dst: &mut [f32],
    a: Rows<'_>,
    b: Rows<'_>,
    [m, k, n]: [usize; 3],
    accumulate: bool,
) {
    assert!(dst.len() >= m * n, "multiply: dst too short");
    // SAFETY: `dst` holds rows 0 .. m of n elements each, and is borrowed mutably.
    unsafe { multiply_into(dst.as_mut_ptr(), n, a, b, [m, k, n], accumulate) }
}

/// [`multiply`] into `dst[i·ldd + j]`.
///
/// # Safety
/// `dst` must be valid for reads and writes at `i·ldd + j` for every `i < m`, `j < n`, and
/// nothing else may access those elements during the call.
///
/// # Panics
/// If `a` or `b` does not fit in its slice.
pub(super) unsafe fn multiply_into(
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
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just now), `a` and `b` were checked above, and
        // the caller vouches for `dst`; the kernel masks the columns past `n`.
        unsafe { avx512::multiply(dst, ldd, a, b, [m, k, n], accumulate) };
        return;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    // SAFETY: `a` and `b` were checked above and the caller vouches for `dst`; the kernel covers
    // the columns below a multiple of 8, the loop below the rest.
    let done = unsafe { simd128::multiply(dst, ldd, a, b, [m, k, n], accumulate) };
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let done = 0;
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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::Rows;

    /// Rows of `a` per block.
    const ROWS: usize = 8;

    /// See [`super::multiply_into`]; the caller guarantees AVX-512F and the operands. Column
    /// blocks outside, row blocks inside: a block's 32 columns of `b` (`k × 128` bytes) stay in
    /// cache while every row block of `a` passes over them.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn multiply(
        dst: *mut f32,
        ldd: usize,
        a: Rows<'_>,
        b: Rows<'_>,
        [m, k, n]: [usize; 3],
        accumulate: bool,
    ) {
        for j in (0..n).step_by(32) {
            let mut i = 0;
            while i + ROWS <= m {
                // SAFETY: rows i .. i + ROWS ≤ m, columns j .. min(j + 32, n); see `block`.
                unsafe { block::<ROWS>(dst, ldd, a, b, [i, j], [k, n], accumulate) };
                i += ROWS;
            }
            while i < m {
                // SAFETY: as above, one row.
                unsafe { block::<1>(dst, ldd, a, b, [i, j], [k, n], accumulate) };
                i += 1;
            }
        }
    }

    /// Lanes `0 .. count` of a 16-lane mask (all for `count ≥ 16`, none for 0).
    fn lanes(count: usize) -> __mmask16 {
        if count >= 16 {
            0xffff
        } else {
            ((1u32 << count) - 1) as __mmask16
        }
    }

    /// Rows `i .. i + R`, columns `j .. min(j + 32, n)` of `dst`, in `R × 2` vector
    /// accumulators.
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const R: usize>(
        dst: *mut f32,
        ldd: usize,
        a: Rows<'_>,
        b: Rows<'_>,
        [i, j]: [usize; 2],
        [k, n]: [usize; 2],
        accumulate: bool,
    ) {
        let (low, high) = (lanes(n - j), lanes((n - j).saturating_sub(16)));
        let out = |r: usize| dst.wrapping_add((i + r) * ldd + j);
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        if accumulate {
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: lanes j .. n of row i + r are the caller's to use.
                unsafe {
                    acc[0] = _mm512_maskz_loadu_ps(low, out(r));
                    acc[1] = _mm512_maskz_loadu_ps(high, out(r).wrapping_add(16));
                }
            }
        }
        for p in 0..k {
            let row = b.data[p * b.ld..].as_ptr().wrapping_add(j);
            // SAFETY: only lanes j .. n of row p are read (the masks stop at column n, and `b`
            // holds row p up to column n); masked-off lanes are not accessed.
            let (b0, b1) = unsafe {
                (
                    _mm512_maskz_loadu_ps(low, row),
                    _mm512_maskz_loadu_ps(high, row.wrapping_add(16)),
                )
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(a.data[(i + r) * a.ld + p]);
                acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: lanes j .. n of row i + r are the caller's to use.
            unsafe {
                _mm512_mask_storeu_ps(out(r), low, acc[0]);
                _mm512_mask_storeu_ps(out(r).wrapping_add(16), high, acc[1]);
            }
        }
    }
}

/// WebAssembly's 128-bit SIMD: 4 rows × 8 columns of accumulators, no fused multiply-add in the
/// base instruction set. V8 maps `v128` onto the 16 `xmm` registers of x86-64 and keeps one as
/// scratch; 8 accumulators, 2 vectors of `b` and the broadcast element of `a` leave it room, where
/// more rows make it spill. The student's 224² prediction in Node 20 (fastest of 17 runs, three
/// alternating runs each): 8 rows 64 ms, 6 rows 62, 5 rows 65, 4 rows 51–53, 3 rows 55.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use core::arch::wasm32::*;

    use super::Rows;

    /// Rows of `a` per block.
    const ROWS: usize = 4;

    /// Columns `0 .. n − n % 8` of [`super::multiply_into`]; returns how many columns it did.
    ///
    /// # Safety
    /// As [`super::multiply_into`], with `a` and `b` already checked.
    pub(super) unsafe fn multiply(
        dst: *mut f32,
        ldd: usize,
        a: Rows<'_>,
        b: Rows<'_>,
        [m, k, n]: [usize; 3],
        accumulate: bool,
    ) -> usize {
        let width = n - n % 8;
        for j in (0..width).step_by(8) {
            let mut i = 0;
            while i + ROWS <= m {
                // SAFETY: rows i .. i + ROWS ≤ m, columns j .. j + 8 ≤ n.
                unsafe { block::<ROWS>(dst, ldd, a, b, [i, j], k, accumulate) };
                i += ROWS;
            }
            while i < m {
                // SAFETY: as above, one row.
                unsafe { block::<1>(dst, ldd, a, b, [i, j], k, accumulate) };
                i += 1;
            }
        }
        width
    }

    /// Rows `i .. i + R`, columns `j .. j + 8` of `dst`.
    unsafe fn block<const R: usize>(
        dst: *mut f32,
        ldd: usize,
        a: Rows<'_>,
        b: Rows<'_>,
        [i, j]: [usize; 2],
        k: usize,
        accumulate: bool,
    ) {
        let out = |r: usize| dst.wrapping_add((i + r) * ldd + j) as *mut v128;
        let mut acc = [[f32x4_splat(0.0); 2]; R];
        if accumulate {
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: columns j .. j + 8 of row i + r are the caller's to use.
                unsafe { *acc = [v128_load(out(r)), v128_load(out(r).wrapping_add(1))] };
            }
        }
        // Raw pointers: the caller checked that `a` holds rows i .. i + R and `b` rows 0 .. k up
        // to column j + 8, so the loop carries no bounds checks, and each element of `a` is one
        // `v128.load32_splat` (a broadcasting load) rather than a load and a lane shuffle.
        let a_rows: [*const f32; R] =
            std::array::from_fn(|r| a.data.as_ptr().wrapping_add((i + r) * a.ld));
        let b_cols = b.data.as_ptr().wrapping_add(j);
        for p in 0..k {
            let row = b_cols.wrapping_add(p * b.ld) as *const v128;
            // SAFETY: row p of `b` holds columns j .. j + 8 (see above).
            let (b0, b1) = unsafe { (v128_load(row), v128_load(row.wrapping_add(1))) };
            for (acc, a_row) in acc.iter_mut().zip(&a_rows) {
                // SAFETY: row i + r of `a` holds column p < k (see above).
                let av = unsafe { v128_load32_splat(a_row.wrapping_add(p) as *const u32) };
                acc[0] = f32x4_add(acc[0], f32x4_mul(av, b0));
                acc[1] = f32x4_add(acc[1], f32x4_mul(av, b1));
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: columns j .. j + 8 of row i + r are the caller's to use.
            unsafe {
                v128_store(out(r), acc[0]);
                v128_store(out(r).wrapping_add(1), acc[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_around_the_blocks_matches_the_definition() {
        for [m, k, n] in [
            [1, 1, 1],
            [8, 5, 32],
            [9, 7, 33],
            [17, 3, 15],
            [16, 40, 70],
            [3, 0, 4],
        ] {
            let (lda, ldb) = (k + 2, n + 3);
            let a: Vec<f32> = (0..m * lda).map(|v| (v % 7) as f32 - 3.0).collect();
            let b: Vec<f32> = (0..k.max(1) * ldb)
                .map(|v| (v % 5) as f32 * 0.5 - 1.0)
                .collect();
            let start: Vec<f32> = (0..m * n).map(|v| (v % 3) as f32).collect();
            for accumulate in [false, true] {
                let mut got = start.clone();
                multiply(
                    &mut got,
                    Rows::new(&a, lda),
                    Rows::new(&b, ldb),
                    [m, k, n],
                    accumulate,
                );
                for i in 0..m {
                    for j in 0..n {
                        let sum: f32 = (0..k).map(|p| a[i * lda + p] * b[p * ldb + j]).sum();
                        let want = if accumulate {
                            start[i * n + j] + sum
                        } else {
                            sum
                        };
                        assert_eq!(got[i * n + j], want, "[{m}, {k}, {n}] at ({i}, {j})");
                    }
                }
            }
        }
    }
}
