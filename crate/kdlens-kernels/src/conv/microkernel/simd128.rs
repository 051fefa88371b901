//! WebAssembly's 128-bit SIMD: 4 rows × 8 columns of accumulators, no fused multiply-add in the
//! base instruction set. V8 maps `v128` onto the 16 `xmm` registers of x86-64 and keeps one as
//! scratch; 8 accumulators, 2 vectors of `b` and the broadcast element of `a` leave it room, where
//! more rows make it spill. The student's 224² prediction in Node 20 (fastest of 17 runs, three
//! alternating runs each): 8 rows 64 ms, 6 rows 62, 5 rows 65, 4 rows 51–53, 3 rows 55.

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
