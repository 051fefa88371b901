//! Independent pieces of work over disjoint chunks of an output: on the thread pool natively, one
//! after the other in WebAssembly (the page's worker has one thread).

/// Whether a piece of work may spread over the thread pool.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Threads {
    /// On the calling thread only (the caller already runs pieces in parallel).
    One,
    /// On every thread of the pool (natively; one thread in WebAssembly).
    All,
}

/// Calls `f(index, chunk)` for each `chunk_len`-sized chunk of `data`.
#[cfg(not(target_arch = "wasm32"))]
pub fn for_each_chunk<F>(data: &mut [f32], chunk_len: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    use rayon::prelude::*;
    data.par_chunks_mut(chunk_len)
        .enumerate()
        .for_each(|(i, chunk)| f(i, chunk));
}

/// Calls `f(index, chunk)` for each `chunk_len`-sized chunk of `data`.
#[cfg(target_arch = "wasm32")]
pub fn for_each_chunk<F>(data: &mut [f32], chunk_len: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    data.chunks_mut(chunk_len)
        .enumerate()
        .for_each(|(i, chunk)| f(i, chunk));
}

/// How many threads `for_each_chunk` spreads work over.
pub(super) fn thread_count() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::current_num_threads();
    #[cfg(target_arch = "wasm32")]
    return 1;
}

/// Calls `f(i)` for `i` in `0..n`.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn for_each_index<F>(n: usize, f: F)
where
    F: Fn(usize) + Sync + Send,
{
    use rayon::prelude::*;
    (0..n).into_par_iter().for_each(f);
}

/// Calls `f(i)` for `i` in `0..n`.
#[cfg(target_arch = "wasm32")]
pub(super) fn for_each_index<F>(n: usize, f: F)
where
    F: Fn(usize) + Sync + Send,
{
    (0..n).for_each(f);
}

/// An output buffer that parallel pieces of work write at disjoint positions (scattered over
/// the buffer, so that it cannot be split into `&mut` chunks).
pub(super) struct SharedOut {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: the users of `SharedOut` guarantee that no two pieces write the same element, and the
// buffer outlives the parallel loop that writes it (it is borrowed mutably for as long).
unsafe impl Sync for SharedOut {}
unsafe impl Send for SharedOut {}

impl SharedOut {
    /// Shares `out` for the lifetime of the parallel loop that writes it.
    pub fn new(out: &mut [f32]) -> Self {
        Self {
            ptr: out.as_mut_ptr(),
            len: out.len(),
        }
    }

    /// Where element `offset` is; `offset + len` must stay inside the buffer.
    ///
    /// # Panics
    /// If `offset + len` is past the end of the buffer.
    pub fn at(&self, offset: usize, len: usize) -> *mut f32 {
        assert!(
            offset + len <= self.len,
            "shared output: write past the end"
        );
        self.ptr.wrapping_add(offset)
    }
}
