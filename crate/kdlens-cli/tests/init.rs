//! `train-teacher --init`: a torchvision-layout DenseNet-121 checkpoint with ImageNet's
//! 1000-class head (written by the test with the parity formula's weights, never committed)
//! starts a 3-class teacher. The head is replaced, the input statistics default to ImageNet's,
//! the trained weights are the checkpoint's moved by a few Adam steps, and a run interrupted
//! after its first epoch resumes to the uninterrupted result without the checkpoint file.

mod common;

use std::path::Path;

use burn::tensor::Device;
use common::{class_tree, formula, json, text, torch_file, train_small};
use kdlens::{bundle::Bundle, image::Normalization, model::Classifier};

/// The teacher's first convolution, `[64, 3, 7, 7]` row-major, from the model file at `path`.
fn conv0(path: &Path) -> Vec<f32> {
    let bundle = Bundle::from_bytes(&std::fs::read(path).unwrap()).unwrap();
    let pre = &bundle.manifest().preprocessing;
    assert_eq!(
        Normalization::from_mean_std(pre.mean, pre.std),
        Some(Normalization::Imagenet),
        "--init defaults to ImageNet's statistics"
    );
    let Classifier::DenseNet(model) = bundle.load_model(&Device::flex()).unwrap() else {
        panic!("{} is not a DenseNet", path.display())
    };
    model
        .features
        .conv0
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

/// Each epoch's record without its timings.
fn learning_curve(run: &Path) -> serde_json::Value {
    let mut history = json(&run.join("metrics.json"));
    for epoch in history.as_array_mut().unwrap() {
        let record = epoch.as_object_mut().unwrap();
        record.remove("seconds");
        record.remove("images_per_second");
    }
    assert_eq!(history.as_array().unwrap().len(), 2);
    history
}

#[test]
fn an_imagenet_densenet121_checkpoint_starts_a_three_class_teacher_and_resumes_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    class_tree(&data, &["a", "b", "c"], 6);
    let init = dir.path().join("densenet121.pth");
    torch_file::write_state_dict(&init, &formula::densenet121_state_dict(1000)).unwrap();
    let run = dir.path().join("run");
    let init_arg = init.to_str().unwrap();
    train_small(
        "train-teacher",
        &data,
        &run,
        &["--init", init_arg, "--epochs", "2", "--seed", "3"],
    );

    let log = std::fs::read_to_string(run.join("log.txt")).unwrap();
    assert!(
        log.contains("(classifier re-initialised for this class count)"),
        "{log}"
    );
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("normalize = \"imagenet\""), "{config}");

    // A few steps of Adam at 1e-4 move each weight by well under 0.01; a fresh initialisation
    // would differ by up to the formula's bound, sqrt(6 / 147) ≈ 0.2.
    let torch_file::Values::F32(start) = formula::values("features.conv0.weight", &[64, 3, 7, 7])
    else {
        unreachable!()
    };
    let trained = conv0(&run.join("teacher.kdlens"));
    let moved = trained
        .iter()
        .zip(&start)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(moved > 0.0 && moved < 0.01, "largest change {moved}");

    // Interrupt after epoch 1: its checkpoint becomes the newest again. The checkpoint file is
    // gone, so the resumed run must not need it.
    let uninterrupted = learning_curve(&run);
    let checkpoints = run.join("checkpoints");
    std::fs::rename(
        checkpoints.join("previous.ckpt"),
        checkpoints.join("last.ckpt"),
    )
    .unwrap();
    std::fs::remove_file(&init).unwrap();
    let out = common::run(&["train-teacher", "--resume", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("resuming after epoch 1 of 2"),
        "{}",
        text(&out)
    );
    assert_eq!(learning_curve(&run), uninterrupted);
}
