//! AVX-512F: 8 rows × 32 columns of accumulators (16 of the 32 `zmm` registers), the columns
//! past `n` masked.

use std::arch::x86_64::*;

use super::Rows;

/// Rows of `a` per block.
const ROWS: usize = 8;

/// Every column of [`super::multiply_into`] (returns `n`). Column blocks outside, row blocks
/// inside: a block's 32 columns of `b` (`k × 128` bytes) stay in cache while every row block of
/// `a` passes over them.
///
/// # Safety
/// As [`super::multiply_into`], with `a` and `b` already checked and AVX-512F present.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn multiply(
    dst: *mut f32,
    ldd: usize,
    a: Rows<'_>,
    b: Rows<'_>,
    [m, k, n]: [usize; 3],
    accumulate: bool,
) -> usize {
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
    n
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
