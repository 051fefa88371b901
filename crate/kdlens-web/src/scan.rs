//! DICOM and NIfTI scans decoded in the worker: the core's decoder, its options and facts as
//! JavaScript values. Ordinary images keep the browser's decoder.

use kdlens::image::scan::{ScanFacts, ScanOptions, decode_scan};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::explainer::to_js;

/// What `decodeScan` returns besides the pixels.
#[derive(Serialize)]
struct ScanOut<'a> {
    width: usize,
    height: usize,
    facts: &'a ScanFacts,
    /// The options decoded with: the chosen ones over the recorded ones.
    options: ScanOptions,
}

/// The core's `ScanOptions` from a plain object (missing fields at their defaults; `undefined`
/// or `null` for all defaults).
fn options_from_js(value: JsValue, what: &str) -> Result<ScanOptions, JsError> {
    if value.is_undefined() || value.is_null() {
        return Ok(ScanOptions::default());
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| JsError::new(&format!("bad {what}: {e}")))
}

/// Decodes the DICOM or NIfTI file in `bytes` with the options `chosen` in the page over those
/// `recorded` in the model's manifest — both the core's `ScanOptions` as plain objects
/// (`{ window, frame, plane, slice }`, missing fields at their defaults), merged by
/// `ScanOptions::or_defaults_from` as the command line merges its flags — and returns
/// `{ width, height, facts, options, rgba }`: the core's `ScanFacts`, the options used, and the
/// 8-bit RGBA pixels as a `Uint8Array`. Errors name the problem, never a header value.
#[wasm_bindgen(js_name = decodeScan)]
pub fn decode_scan_js(
    bytes: &[u8],
    chosen: JsValue,
    recorded: JsValue,
) -> Result<JsValue, JsError> {
    let options = options_from_js(chosen, "scan options")?
        .or_defaults_from(options_from_js(recorded, "recorded scan options")?);
    let scan = decode_scan(bytes, &options).map_err(|e| JsError::new(&e.to_string()))?;
    let out = to_js(&ScanOut {
        width: scan.image.width(),
        height: scan.image.height(),
        facts: &scan.facts,
        options,
    })?;
    let rgba = js_sys::Uint8Array::from(scan.image.pixels());
    js_sys::Reflect::set(&out, &"rgba".into(), &rgba)
        .map_err(|e| JsError::new(&format!("cannot pass the scan's pixels: {e:?}")))?;
    Ok(out)
}

/// A report's scan facts from JavaScript: `undefined` or `null` for an ordinary image.
pub(crate) fn facts_from_js(value: JsValue) -> Result<Option<ScanFacts>, JsError> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    serde_wasm_bindgen::from_value(value)
        .map(Some)
        .map_err(|e| JsError::new(&format!("bad scan facts: {e}")))
}
