//! SHAP's background set carried in the bundle: `kdlens export --data … --background-images N`
//! stores N training images, stratified over the classes, at the model's input size; `kdlens
//! explain --method shap` then explains against exactly those images.

mod common;

use std::path::Path;

use common::{class_tree, json, run, text, train_small};
use kdlens::bundle::Bundle;

fn explain_shap(model: &Path, image: &Path, run_dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--run-dir",
        run_dir.to_str().unwrap(),
        "explain",
        image.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--method",
        "shap",
        "--shap-samples",
        "12",
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "explain: {}", text(&out));
    json(&run_dir.join("img2/explanation.json"))
}

fn shap_values(report: &serde_json::Value) -> Vec<f64> {
    report["maps"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn an_exported_background_is_stratified_and_is_what_explain_uses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    class_tree(&data, &["ankle", "bag", "coat"], 6);
    let teacher_run = dir.path().join("teacher");
    train_small("train-teacher", &data, &teacher_run, &["--epochs", "1"]);
    let model = teacher_run.join("teacher.kdlens");

    let out_dir = dir.path().join("export");
    let out = run(&[
        "--run-dir",
        dir.path().join("export-run").to_str().unwrap(),
        "export",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--background-images",
        "7",
    ]);
    assert!(out.status.success(), "export: {}", text(&out));
    let summary = json(&dir.path().join("export-run/export.json"));
    assert_eq!(summary["background_images"], 7);
    let exported = out_dir.join("model.kdlens");
    let bundle = Bundle::from_bytes(&std::fs::read(&exported).unwrap()).unwrap();
    let background = bundle
        .manifest()
        .shap_background
        .clone()
        .expect("a background set");
    // Seven training images, round-robin over the three classes, at the model's 32² input, RGB.
    assert_eq!(background.len(), 7);
    assert_eq!((background.size, background.channels), ([32, 32], 3));
    let mut per_class = [0; 3];
    for &c in &background.classes {
        per_class[c] += 1;
    }
    assert_eq!(per_class, [3, 2, 2], "{:?}", background.classes);
    assert_eq!(&background.classes[..3], &[0, 1, 2]);
    // Each stored image is a training image of its class (class c has red 80·c + 3·i).
    for (image, &class) in background.images().unwrap().iter().zip(&background.classes) {
        let red = image.pixels()[0] as usize;
        assert!(
            (80 * class..80 * class + 18).contains(&red),
            "red {red} for class {class}"
        );
    }

    // `explain` with the bundle's set equals `explain --background` with its images as files.
    let folder = dir.path().join("background");
    std::fs::create_dir_all(&folder).unwrap();
    for (k, image) in background.images().unwrap().iter().enumerate() {
        let rgba = image::RgbaImage::from_raw(32, 32, image.pixels().to_vec()).unwrap();
        rgba.save(folder.join(format!("{k:02}.png"))).unwrap();
    }
    let image = data.join("bag/img2.png");
    let stored = explain_shap(&exported, &image, &dir.path().join("stored"), &[]);
    let files = explain_shap(
        &exported,
        &image,
        &dir.path().join("files"),
        &["--background", folder.to_str().unwrap()],
    );
    assert_eq!(shap_values(&stored), shap_values(&files));
    // …and differs from the default black and mid-gray pair that the unexported model uses.
    let default = explain_shap(&model, &image, &dir.path().join("default"), &[]);
    assert_ne!(shap_values(&stored), shap_values(&default));
}
