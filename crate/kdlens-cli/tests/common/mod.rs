//! Helpers shared by the end-to-end tests of the `kdlens` binary.
#![allow(dead_code)]

// The core's torchvision-checkpoint writer and parity formula, shared rather than copied.
#[path = "../../../kdlens/tests/common/formula.rs"]
pub mod formula;
#[path = "../../../kdlens/tests/common/torch_file.rs"]
pub mod torch_file;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

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

/// A 40×36 PNG whose red channel is `value` and whose green and blue are gradients.
pub fn png(path: &Path, value: u8) {
    let image = image::RgbImage::from_fn(40, 36, |x, y| {
        image::Rgb([value, (x * 5) as u8, (y * 7) as u8])
    });
    image.save(path).unwrap();
}

/// `root/<class>/img{i}.png` for each class: class `c` image `i` has red `80·c + 3·i`.
pub fn class_tree(root: &Path, classes: &[&str], per_class: usize) {
    for (c, class) in classes.iter().enumerate() {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            png(&dir.join(format!("img{i}.png")), (c * 80 + i * 3) as u8);
        }
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Runs a small training command (`train-teacher` or `distill`) on `data` into `run_dir` at
/// 32², batch 4, one replica, with `extra` flags (epochs, `--teacher`, …); it must succeed.
pub fn train_small(command: &str, data: &Path, run_dir: &Path, extra: &[&str]) {
    let mut args = vec![
        "--run-dir",
        run_dir.to_str().unwrap(),
        command,
        "--data",
        data.to_str().unwrap(),
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--replicas",
        "1",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "{command}: {}", text(&out));
}
