//! kdlens in the browser: wasm-bindgen glue over the kdlens core, nothing more.
//!
//! The page's Web Worker creates one [`Explainer`], loads a model bundle into it and asks for
//! explanations of RGBA pixels; DICOM and NIfTI files become those pixels through the core's
//! scan decoder (`decodeScan`). Every number comes from the core (`kdlens`): this crate only
//! converts between JavaScript values and the core's types. It compiles to an empty library on
//! native targets.

#![warn(missing_docs)]

#[cfg(target_arch = "wasm32")]
mod explainer;
#[cfg(target_arch = "wasm32")]
mod scan;

#[cfg(target_arch = "wasm32")]
pub use explainer::Explainer;
#[cfg(target_arch = "wasm32")]
pub use scan::decode_scan_js;

/// Runs once when the module is instantiated.
///
/// Some dependencies register static constructors (`inventory`). When a module contains
/// constructors but never calls `__wasm_call_ctors` itself, `wasm-ld` treats it as a "command"
/// and wraps *every* export so that the constructors run again on each call from JavaScript —
/// about half a millisecond per call here, which made passing a result back cost longer than
/// computing it. Calling them explicitly, once, turns the wrapping off.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
fn start() {
    unsafe extern "C" {
        fn __wasm_call_ctors();
    }
    // SAFETY: called exactly once, by wasm-bindgen right after instantiation and before any
    // other export, which is when static constructors are meant to run.
    unsafe { __wasm_call_ctors() };
    console_error_panic_hook::set_once();
}
