//! ARM's Advanced SIMD (NEON, part of every aarch64 CPU): 8 rows × 12 columns of accumulators.
//! Its 32 `q` registers hold the 24 accumulators, the three vectors of a row of `b` and the
//! element of `a` each fused multiply-add takes by lane. Whole blocks of 12 columns, then of 4;
//! the plain loop does the last `n % 4`.

use core::arch::aarch64::*;

use super::Rows;

/// Rows of `a` per block.
const ROWS: usize = 8;

/// Columns `0 .. n − n % 4` of [`super::multiply_into`]; returns how many columns it did.
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
    let wide = n - n % 12;
    let width = n - n % 4;
    // SAFETY: every block lies inside rows 0 .. m and columns 0 .. width ≤ n.
    unsafe {
        for j in (0..wide).step_by(12) {
            rows::<3>(dst, ldd, a, b, [m, k], j, accumulate);
        }
        for j in (wide..width).step_by(4) {
            rows::<1>(dst, ldd, a, b, [m, k], j, accumulate);
        }
    }
    width
}

/// Columns `j .. j + 4V` of every row, `ROWS` rows at a time.
///
/// # Safety
/// As [`block`], for rows `0 .. m`.
unsafe fn rows<const V: usize>(
    dst: *mut f32,
    ldd: usize,
    a: Rows<'_>,
    b: Rows<'_>,
    [m, k]: [usize; 2],
    j: usize,
    accumulate: bool,
) {
    let mut i = 0;
    while i + ROWS <= m {
        // SAFETY: rows i .. i + ROWS ≤ m.
        unsafe { block::<ROWS, V>(dst, ldd, a, b, [i, j], k, accumulate) };
        i += ROWS;
    }
    while i < m {
        // SAFETY: one row i < m.
        unsafe { block::<1, V>(dst, ldd, a, b, [i, j], k, accumulate) };
        i += 1;
    }
}

/// Rows `i .. i + R`, columns `j .. j + 4V` of `dst`, in `R × V` vector accumulators.
///
/// # Safety
/// Those rows and columns lie inside `dst`, `a` (rows, up to column `k`) and `b` (rows `0 .. k`).
unsafe fn block<const R: usize, const V: usize>(
    dst: *mut f32,
    ldd: usize,
    a: Rows<'_>,
    b: Rows<'_>,
    [i, j]: [usize; 2],
    k: usize,
    accumulate: bool,
) {
    let out = |r: usize| dst.wrapping_add((i + r) * ldd + j);
    // SAFETY (loads and stores below): see the function's contract.
    let mut acc = [[unsafe { vdupq_n_f32(0.0) }; V]; R];
    if accumulate {
        for (r, acc) in acc.iter_mut().enumerate() {
            *acc = std::array::from_fn(|v| unsafe { vld1q_f32(out(r).wrapping_add(4 * v)) });
        }
    }
    let a_rows: [*const f32; R] =
        std::array::from_fn(|r| a.data.as_ptr().wrapping_add((i + r) * a.ld));
    let b_cols = b.data.as_ptr().wrapping_add(j);
    for p in 0..k {
        let row = b_cols.wrapping_add(p * b.ld);
        let bv: [float32x4_t; V] =
            std::array::from_fn(|v| unsafe { vld1q_f32(row.wrapping_add(4 * v)) });
        for (acc, a_row) in acc.iter_mut().zip(&a_rows) {
            let av = unsafe { *a_row.wrapping_add(p) };
            for (acc, &bv) in acc.iter_mut().zip(&bv) {
                *acc = unsafe { vfmaq_n_f32(*acc, bv, av) };
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, &value) in acc.iter().enumerate() {
            unsafe { vst1q_f32(out(r).wrapping_add(4 * v), value) };
        }
    }
}
