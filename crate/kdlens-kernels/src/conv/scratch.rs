//! Working buffers kept per thread between calls. The kernels' intermediate arrays (im2col
//! columns, transformed tiles, products) run to megabytes; allocating them afresh for every layer
//! costs a page fault per 4 KiB touched, which for the large early layers takes as long as the
//! arithmetic.

use std::cell::RefCell;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a buffer of `len` floats whose contents are unspecified (left over from earlier
/// use): `f` must write every element it reads.
pub(super) fn with_buffer<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buffer = POOL
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_default();
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    let result = f(&mut buffer[..len]);
    POOL.with(|pool| pool.borrow_mut().push(buffer));
    result
}
