//! Training on `wgpu` follows training on `flex`: the same DenseNet-121 teacher (every weight
//! from a torchvision-layout checkpoint, so no device's random stream is involved; the network
//! has no dropout) trained three steps on each, one batch per epoch. In CI the GPU is Mesa's
//! lavapipe (Vulkan on the CPU); on a machine without an adapter the test says so and skips,
//! except under `CI`, where it fails. (Replicas on `wgpu`, and a step's gradients against
//! `flex`, are unit tests in `src/train/step.rs`.)
//!
//! Tolerances: the first epoch's training loss is the untrained network's, within 1e-5
//! (relative). After that, 2 %: Adam's first steps move each weight by about ±lr whatever its
//! gradient's size, so where a gradient is near zero the float-level difference between the
//! backends decides the direction (measured: 0.05 % after one step, 0.7 % after two).

mod common;

use std::path::Path;

use common::{class_tree, formula, json, kdlens, text, torch_file};

/// Per epoch: training loss, validation loss, validation accuracy (reported, not compared:
/// three validation images).
fn curve(run: &Path) -> Vec<[f64; 3]> {
    json(&run.join("metrics.json"))
        .as_array()
        .unwrap()
        .iter()
        .map(|r| ["train_loss", "val_loss", "val_accuracy"].map(|k| r[k].as_f64().unwrap()))
        .collect()
}

fn train(device: &str, data: &Path, init: &Path, run: &Path) -> std::process::Output {
    kdlens()
        .env("BURN_DEVICE", device)
        .args([
            "--device",
            device,
            "--seed",
            "5",
            "--run-dir",
            run.to_str().unwrap(),
        ])
        .args([
            "train-teacher",
            "--data",
            data.to_str().unwrap(),
            "--image-size",
            "32",
        ])
        .args(["--batch-size", "12", "--epochs", "3", "--replicas", "1"])
        .args(["--init", init.to_str().unwrap()])
        .output()
        .expect("kdlens runs")
}

#[test]
fn a_teacher_trained_on_wgpu_follows_the_same_curve_as_on_flex() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    class_tree(&data, &["a", "b", "c"], 6);
    let init = dir.path().join("densenet121-3.pth");
    torch_file::write_state_dict(&init, &formula::densenet121_state_dict(3)).unwrap();

    let gpu_run = dir.path().join("wgpu");
    let out = train("wgpu", &data, &init, &gpu_run);
    if !out.status.success() && text(&out).contains("no usable GPU adapter") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs a Vulkan adapter (Mesa's lavapipe): {}",
            text(&out)
        );
        eprintln!("SKIPPED training on wgpu: {}", text(&out));
        return;
    }
    assert!(out.status.success(), "wgpu: {}", text(&out));

    let cpu_run = dir.path().join("flex");
    let out = train("flex", &data, &init, &cpu_run);
    assert!(out.status.success(), "flex: {}", text(&out));

    let (gpu, cpu) = (curve(&gpu_run), curve(&cpu_run));
    eprintln!("(training loss, validation loss, accuracy) per epoch\nwgpu {gpu:?}\nflex {cpu:?}");
    assert_eq!((gpu.len(), cpu.len()), (3, 3));
    // The curve must move far more than the tolerance, or a backend that did not train would pass.
    assert!(
        cpu[2][0] < 0.8 * cpu[0][0],
        "training barely moved: {cpu:?}"
    );
    let untrained = (gpu[0][0] - cpu[0][0]).abs() / cpu[0][0];
    assert!(
        untrained <= 1e-5,
        "untrained loss: {} against {}",
        gpu[0][0],
        cpu[0][0]
    );
    for (epoch, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        for (what, (a, b)) in ["training loss", "validation loss"]
            .iter()
            .zip(g.iter().zip(c))
        {
            assert!(
                (a - b).abs() <= 0.02 * b.abs(),
                "epoch {}: {what} {a} on wgpu, {b} on flex",
                epoch + 1
            );
        }
    }
}
