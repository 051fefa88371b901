//! `--normalize`: the statistics a teacher is trained with are recorded in its model and its run
//! config, and the student distilled from it inherits them (the page's test,
//! `tests/browser.test.js`, checks that the page applies recorded statistics as the CLI does).

mod common;

use std::path::{Path, PathBuf};

use common::{class_tree, files_under, train_small};
use kdlens::{bundle::Bundle, image::Normalization};

/// Every model file under `dir`.
fn models_under(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "kdlens"))
        .collect()
}

/// The normalisation recorded in the model file at `path`.
fn recorded(path: &Path) -> Option<Normalization> {
    let bundle = Bundle::from_bytes(&std::fs::read(path).unwrap()).unwrap();
    let pre = &bundle.manifest().preprocessing;
    Normalization::from_mean_std(pre.mean, pre.std)
}

#[test]
fn imagenet_statistics_are_recorded_and_inherited_by_the_student() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    class_tree(&data, &["a", "b", "c"], 6);

    let teacher_run = dir.path().join("teacher");
    train_small(
        "train-teacher",
        &data,
        &teacher_run,
        &["--epochs", "1", "--normalize", "imagenet"],
    );
    let config = std::fs::read_to_string(teacher_run.join("config.toml")).unwrap();
    assert!(config.contains("normalize = \"imagenet\""), "{config}");
    let teachers = models_under(&teacher_run);
    assert!(!teachers.is_empty());
    for model in &teachers {
        assert_eq!(recorded(model), Some(Normalization::Imagenet), "{model:?}");
    }

    let student_run = dir.path().join("student");
    let teacher = teacher_run.join("teacher.kdlens");
    let teacher = teacher.to_str().unwrap();
    train_small(
        "distill",
        &data,
        &student_run,
        &["--epochs", "1", "--teacher", teacher],
    );
    let config = std::fs::read_to_string(student_run.join("config.toml")).unwrap();
    assert!(config.contains("normalize = \"imagenet\""), "{config}");
    let students = models_under(&student_run);
    assert!(!students.is_empty());
    for model in &students {
        assert_eq!(recorded(model), Some(Normalization::Imagenet), "{model:?}");
    }

    // Without --normalize (and without --init) a teacher keeps the paper's [0, 1] inputs.
    let plain_run = dir.path().join("plain");
    train_small("train-teacher", &data, &plain_run, &["--epochs", "1"]);
    for model in models_under(&plain_run) {
        assert_eq!(recorded(&model), Some(Normalization::Unit), "{model:?}");
    }
}
