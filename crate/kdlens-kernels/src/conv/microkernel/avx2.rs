//! AVX2 with fused multiply-add (x86-64-v3): 6 rows × 16 columns of accumulators. Its 16 `ymm`
//! registers hold the 12 accumulators, the two vectors of a row of `b` and the broadcast element
//! of `a` (15), where the AVX-512 tile's 8 rows would spill. The last columns of a block are
//! read and written with masked loads and stores, so every column is done here.

use std::arch::x86_64::*;

use super::Rows;

/// Rows of `a` per block.
const ROWS: usize = 6;
/// Columns per block: two vectors of 8 lanes.
const COLS: usize = 16;

/// Every column of [`super::multiply_into`] (returns `n`): column blocks outside, row blocks
/// inside, as the AVX-512 kernel.
///
/// # Safety
/// As [`super::multiply_into`], with `a` and `b` already checked and AVX2 and FMA present.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn multiply(
    dst: *mut f32,
    ldd: usize,
    a: Rows<'_>,
    b: Rows<'_>,
    [m, k, n]: [usize; 3],
    accumulate: bool,
) -> usize {
    for j in (0..n).step_by(COLS) {
        let cols = (n - j).min(COLS);
        let mut i = 0;
        while i + ROWS <= m {
            // SAFETY: rows i .. i + ROWS ≤ m, columns j .. j + cols ≤ n; see `block`.
            unsafe {
                if cols == COLS {
                    block::<ROWS, false>(dst, ldd, a, b, [i, j], [k, cols], accumulate)
                } else {
                    block::<ROWS, true>(dst, ldd, a, b, [i, j], [k, cols], accumulate)
                }
            };
            i += ROWS;
        }
        while i < m {
            // SAFETY: as above, one row.
            unsafe { block::<1, true>(dst, ldd, a, b, [i, j], [k, cols], accumulate) };
            i += 1;
        }
    }
    n
}

/// Lanes `0 .. count` of an 8-lane mask (all for `count ≥ 8`, none for 0 or less).
#[target_feature(enable = "avx2")]
fn lanes(count: isize) -> __m256i {
    let count = count.clamp(0, 8) as i32;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(count),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// Rows `i .. i + R`, columns `j .. j + cols` of `dst` (`cols ≤ 16`), in `R × 2` vector
/// accumulators; `MASKED` reads and writes only the first `cols` lanes (without it `cols` must be
/// 16).
#[target_feature(enable = "avx2,fma")]
unsafe fn block<const R: usize, const MASKED: bool>(
    dst: *mut f32,
    ldd: usize,
    a: Rows<'_>,
    b: Rows<'_>,
    [i, j]: [usize; 2],
    [k, cols]: [usize; 2],
    accumulate: bool,
) {
    let masks = [lanes(cols as isize), lanes(cols as isize - 8)];
    // SAFETY (loads and stores below): without `MASKED` all 16 columns j .. j + 16 ≤ n are in
    // bounds; with it only the lanes below `cols` are accessed, and masked-off lanes are not.
    let load = |p: *const f32, half: usize| unsafe {
        if MASKED {
            _mm256_maskload_ps(p.wrapping_add(8 * half), masks[half])
        } else {
            _mm256_loadu_ps(p.wrapping_add(8 * half))
        }
    };
    let out = |r: usize| dst.wrapping_add((i + r) * ldd + j);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    if accumulate {
        for (r, acc) in acc.iter_mut().enumerate() {
            *acc = [load(out(r), 0), load(out(r), 1)];
        }
    }
    let a_rows: [*const f32; R] =
        std::array::from_fn(|r| a.data.as_ptr().wrapping_add((i + r) * a.ld));
    let b_cols = b.data.as_ptr().wrapping_add(j);
    for p in 0..k {
        let row = b_cols.wrapping_add(p * b.ld);
        let (b0, b1) = (load(row, 0), load(row, 1));
        for (acc, a_row) in acc.iter_mut().zip(&a_rows) {
            // SAFETY: the caller checked that `a` holds rows i .. i + R up to column k.
            let av = unsafe { _mm256_broadcast_ss(&*a_row.wrapping_add(p)) };
            acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
            acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (half, &value) in acc.iter().enumerate() {
            let p = out(r).wrapping_add(8 * half);
            // SAFETY: as for the loads.
            unsafe {
                if MASKED {
                    _mm256_maskstore_ps(p, masks[half], value)
                } else {
                    _mm256_storeu_ps(p, value)
                }
            }
        }
    }
}
