//! Test data that `pkg-scripts/fetch-test-scans.sh` brings into `tests/.cache/` (never committed),
//! and the JSON references written beside the tests.

use std::path::PathBuf;

use serde_json::Value;

/// `tests/.cache/<folder>` when it holds `marker`; otherwise `None`, said on stderr so that the
/// test can skip — except in CI, which fetches the data: there a missing folder is a failure.
pub fn fetched(folder: &str, marker: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/.cache")
        .join(folder);
    if dir.join(marker).exists() {
        return Some(dir);
    }
    let why =
        format!("tests/.cache/{folder} is not fetched (run bash pkg-scripts/fetch-test-scans.sh)");
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipping: {why}");
    None
}

/// The reference `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The numbers of a JSON array.
pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}
