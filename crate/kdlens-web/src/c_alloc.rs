//! The C runtime that openjp2 — the Rust port of OpenJPEG behind dicom-rs's JPEG 2000 codec —
//! expects on `wasm32-unknown-unknown`, where there is none:
//! - the C functions it declares and calls (`malloc`, `calloc`, `realloc`, `free`, `strcpy`),
//!   which would otherwise be left as imports the browser cannot satisfy. Here they are, on Rust's
//!   allocator: each block carries its size in a 16-byte header (C's alignment guarantee), which
//!   `free` and `realloc` read back;
//! - an allocator that accepts freeing a null pointer: openjp2 frees code-block buffers it never
//!   allocated (null) through `std::alloc::dealloc`, which native allocators tolerate as C's
//!   `free(NULL)` does, and which traps in wasm32's allocator ("memory access out of bounds").
//!
//! Both belong to the program that links openjp2, this crate, not to the core: a library must
//! not choose the global allocator of every wasm32 program that uses it.

use std::{
    alloc::{GlobalAlloc, Layout, System, alloc, alloc_zeroed, dealloc, realloc as resize},
    ffi::{c_char, c_void},
    ptr::null_mut,
};

/// Bytes before each block: its requested size, padded to C's 16-byte alignment.
const HEADER: usize = 16;

/// The layout of a block of `size` usable bytes with its header.
fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, HEADER).ok()
}

/// Writes the header at `base` and returns the usable block after it (null stays null).
///
/// # Safety
/// `base` is null or the start of a block of at least `size + HEADER` bytes.
unsafe fn user_block(base: *mut u8, size: usize) -> *mut c_void {
    if base.is_null() {
        return null_mut();
    }
    // SAFETY: `base` starts a block of at least HEADER bytes, aligned to 16.
    unsafe {
        base.cast::<usize>().write(size);
        base.add(HEADER).cast()
    }
}

/// The start of the block that `user` (from `user_block`) belongs to, and its size.
///
/// # Safety
/// `user` came from `malloc`, `calloc` or `realloc` below and was not freed.
unsafe fn base_of(user: *mut c_void) -> (*mut u8, usize) {
    // SAFETY: the header sits HEADER bytes before every block handed out.
    unsafe {
        let base = user.cast::<u8>().sub(HEADER);
        (base, base.cast::<usize>().read())
    }
}

/// C's `malloc`: `size` bytes, or null.
///
/// # Safety
/// As C's: the block is freed once, with `free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    match layout(size) {
        // SAFETY: the layout has a non-zero size (at least the header).
        Some(layout) => unsafe { user_block(alloc(layout), size) },
        None => null_mut(),
    }
}

/// C's `calloc`: `count × size` zeroed bytes, or null (also when the product overflows).
///
/// # Safety
/// As C's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    match count
        .checked_mul(size)
        .and_then(|total| Some((total, layout(total)?)))
    {
        // SAFETY: as in `malloc`.
        Some((total, layout)) => unsafe { user_block(alloc_zeroed(layout), total) },
        None => null_mut(),
    }
}

/// C's `free`: releases a block (null is ignored).
///
/// # Safety
/// `block` is null or came from these functions and was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(block: *mut c_void) {
    if block.is_null() {
        return;
    }
    // SAFETY: the caller hands back a live block, allocated with exactly this layout.
    unsafe {
        let (base, size) = base_of(block);
        if let Some(layout) = layout(size) {
            dealloc(base, layout);
        }
    }
}

/// C's `realloc`: the block resized to `size` bytes, its contents kept; null (and the block
/// untouched) when that fails.
///
/// # Safety
/// `block` is null or came from these functions and was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(block: *mut c_void, size: usize) -> *mut c_void {
    if block.is_null() {
        // SAFETY: as C's realloc(NULL, n) = malloc(n).
        return unsafe { malloc(size) };
    }
    let Some(new_total) = size.checked_add(HEADER) else {
        return null_mut();
    };
    // SAFETY: a live block of this layout; `resize` keeps the header and contents.
    unsafe {
        let (base, old) = base_of(block);
        match layout(old) {
            Some(layout) => user_block(resize(base, layout, new_total), size),
            None => null_mut(),
        }
    }
}

/// C's `strcpy`: copies the NUL-terminated string at `source`, NUL included, to `target`.
///
/// # Safety
/// As C's: `source` is NUL-terminated and `target` has room for it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strcpy(target: *mut c_char, source: *const c_char) -> *mut c_char {
    let mut i = 0;
    // SAFETY: the caller guarantees both strings' extents.
    unsafe {
        loop {
            let c = *source.add(i);
            *target.add(i) = c;
            if c == 0 {
                return target;
            }
            i += 1;
        }
    }
}

/// wasm32's system allocator, with `dealloc` of a null pointer doing nothing.
struct NullTolerant;

// SAFETY: every call is forwarded to `System` unchanged, except a null `dealloc`, which frees
// nothing.
unsafe impl GlobalAlloc for NullTolerant {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if !block.is_null() {
            // SAFETY: a block this allocator handed out, as the caller guarantees.
            unsafe { System.dealloc(block, layout) }
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe { System.realloc(block, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: NullTolerant = NullTolerant;
