//! A bounds-checked front to the `gemm` crate for the convolution kernels: row-major `f32`
//! matrices given as slices with strides.

/// A read-only `rows × cols` matrix inside `data`: element `(i, j)` is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(super) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of this matrix (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// Whether a matrix product may split itself across threads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Threads {
    /// On the calling thread only (the caller already runs tasks in parallel).
    One,
    /// On every thread of the pool (native builds; the same as `One` in WebAssembly).
    All,
}

/// `dst = lhs × rhs` (or `dst += lhs × rhs` with `accumulate`), `dst` row-major
/// `lhs.rows × rhs.cols`.
///
/// # Panics
/// If the shapes disagree or a matrix does not fit in its slice.
pub(super) fn matmul(
    dst: &mut [f32],
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
    threads: Threads,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "matmul: inner dimensions differ");
    assert!(
        lhs.fits() && rhs.fits(),
        "matmul: operand outside its slice"
    );
    assert!(dst.len() >= m * n, "matmul: destination too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: every index the product touches was checked above to lie inside its slice:
    // lhs (i, p) for i < m, p < k; rhs (p, j) for p < k, j < n; dst (i, j) at i·n + j < m·n.
    // `dst` is borrowed mutably, so it cannot alias the operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism(threads),
        );
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn parallelism(threads: Threads) -> gemm::Parallelism {
    match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::All => gemm::Parallelism::Rayon(rayon::current_num_threads()),
    }
}

#[cfg(target_arch = "wasm32")]
fn parallelism(_threads: Threads) -> gemm::Parallelism {
    gemm::Parallelism::None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_and_transposes_match_the_definition() {
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect(); // 2×3
        let b: Vec<f32> = (0..12).map(|v| v as f32 - 4.0).collect(); // 3×4
        let mut c = vec![1.0; 8];
        matmul(
            &mut c,
            MatRef::row_major(&a, 2, 3),
            MatRef::row_major(&b, 3, 4),
            true,
            Threads::All,
        );
        for i in 0..2 {
            for j in 0..4 {
                let want: f32 = 1.0 + (0..3).map(|p| a[i * 3 + p] * b[p * 4 + j]).sum::<f32>();
                assert_eq!(c[i * 4 + j], want);
            }
        }
        // aᵀ (3×2) × a (2×3) without copies.
        let mut g = vec![0.0; 9];
        let at = MatRef::row_major(&a, 2, 3).t();
        matmul(&mut g, at, MatRef::row_major(&a, 2, 3), false, Threads::One);
        assert_eq!(g[3 + 2], a[1] * a[2] + a[4] * a[5]);
    }
}
