//! The matrix product inside Winograd's algorithm, `M = U × V` with `U` `[c_out, c_in]` and `V`
//! `[c_in, tiles]`: short and wide, recomputed for every chunk of tiles, where a general GEMM
//! spends more time packing than multiplying. Register-blocked for AVX-512 (8 rows × 32 columns
//! of accumulators, detected at run time); a plain loop the compiler vectorises elsewhere
//! (WebAssembly's simd128 included).

/// `dst[i·n + j] = Σₚ a[i·k + p] · b[p·ldb + j]` for `i < m`, `j < n`: `a` row-major `[m, k]`,
/// `b` `[k, n]` with rows `ldb` apart, `dst` row-major `[m, n]`.
///
/// # Panics
/// If a matrix does not fit in its slice.
pub(super) fn multiply(dst: &mut [f32], a: &[f32], b: &[f32], [m, k, n]: [usize; 3], ldb: usize) {
    assert!(
        a.len() >= m * k && dst.len() >= m * n,
        "multiply: a or dst too short"
    );
    assert!(
        n <= ldb && (k == 0 || b.len() >= (k - 1) * ldb + n),
        "multiply: b too short"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just now) and every access stays inside the
        // slices (their lengths were checked above; the kernel masks the columns past `n`).
        unsafe { avx512::multiply(dst, a, b, [m, k, n], ldb) };
        return;
    }
    portable(dst, a, b, [m, k, n], ldb);
}

fn portable(dst: &mut [f32], a: &[f32], b: &[f32], [m, k, n]: [usize; 3], ldb: usize) {
    for (i, row) in dst.chunks_mut(n).take(m).enumerate() {
        row.fill(0.0);
        for (p, &av) in a[i * k..(i + 1) * k].iter().enumerate() {
            let b_row = &b[p * ldb..p * ldb + n];
            for (d, &bv) in row.iter_mut().zip(b_row) {
                *d += av * bv;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Rows of `a` per block.
    const ROWS: usize = 8;

    /// See [`super::multiply`]; the caller guarantees AVX-512F and the slice lengths.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn multiply(
        dst: &mut [f32],
        a: &[f32],
        b: &[f32],
        [m, k, n]: [usize; 3],
        ldb: usize,
    ) {
        let mut i = 0;
        while i + ROWS <= m {
            // SAFETY: rows i .. i + ROWS < m; see `block`.
            unsafe { block::<ROWS>(dst, a, b, i, [k, n], ldb) };
            i += ROWS;
        }
        while i < m {
            // SAFETY: as above, one row.
            unsafe { block::<1>(dst, a, b, i, [k, n], ldb) };
            i += 1;
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

    /// Rows `i .. i + R` of `dst`, 32 columns at a time with `R × 2` vector accumulators.
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const R: usize>(
        dst: &mut [f32],
        a: &[f32],
        b: &[f32],
        i: usize,
        [k, n]: [usize; 2],
        ldb: usize,
    ) {
        let mut j = 0;
        while j < n {
            let (low, high) = (lanes(n - j), lanes((n - j).saturating_sub(16)));
            let mut acc = [[_mm512_setzero_ps(); 2]; R];
            for p in 0..k {
                let row = b[p * ldb..].as_ptr().wrapping_add(j);
                // SAFETY: only lanes j .. n of row p are read (the masks stop at column n, and
                // `b` holds row p up to column n); masked-off lanes are not accessed.
                let (b0, b1) = unsafe {
                    (
                        _mm512_maskz_loadu_ps(low, row),
                        _mm512_maskz_loadu_ps(high, row.wrapping_add(16)),
                    )
                };
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(a[(i + r) * k + p]);
                    acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let out = dst[(i + r) * n..].as_mut_ptr().wrapping_add(j);
                // SAFETY: lanes j .. n of row i + r lie inside `dst` (`dst.len() ≥ m·n`).
                unsafe {
                    _mm512_mask_storeu_ps(out, low, acc[0]);
                    _mm512_mask_storeu_ps(out.wrapping_add(16), high, acc[1]);
                }
            }
            j += 32;
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
            let ldb = n + 3;
            let a: Vec<f32> = (0..m * k).map(|v| (v % 7) as f32 - 3.0).collect();
            let b: Vec<f32> = (0..k * ldb).map(|v| (v % 5) as f32 * 0.5 - 1.0).collect();
            let mut got = vec![f32::NAN; m * n];
            multiply(&mut got, &a, &b, [m, k, n], ldb);
            let mut want = vec![f32::NAN; m * n];
            portable(&mut want, &a, &b, [m, k, n], ldb);
            for i in 0..m {
                for j in 0..n {
                    let exact: f32 = (0..k).map(|p| a[i * k + p] * b[p * ldb + j]).sum();
                    assert_eq!(got[i * n + j], exact, "[{m}, {k}, {n}] at ({i}, {j})");
                    assert_eq!(
                        want[i * n + j],
                        exact,
                        "portable [{m}, {k}, {n}] at ({i}, {j})"
                    );
                }
            }
        }
    }
}
