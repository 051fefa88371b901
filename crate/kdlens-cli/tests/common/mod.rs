//! Helpers shared by the end-to-end tests of the `kdlens` binary.
#![allow(dead_code)]

use std::{path::Path, process::Command, process::Output};

/// The `kdlens` binary under test, on the CPU backend.
pub fn kdlens() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kdlens"));
    command.env("BURN_DEVICE", "flex");
    command
}

/// Runs `kdlens args…` to completion.
pub fn run(args: &[&str]) -> Output {
    kdlens().args(args).output().expect("kdlens runs")
}

/// Standard output and standard error together.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A JSON file, parsed.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}
