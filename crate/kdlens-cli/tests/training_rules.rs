//! The rules that govern a long run, checked on a short seeded one: the learning rate drops by
//! 10× after `--patience` epochs without a better validation loss, training stops after
//! `--early-stop` such epochs, and the best epoch (lowest validation loss) is the model kept.
//! The run's `metrics.json` history is replayed through the rules and must match what the run
//! did; its log must say each rule fired.

mod common;

use common::{class_tree, json, train_small};

/// What the rules say happens to a run with this validation-loss history: the learning rate of
/// each epoch, the epoch after which training stops (if before `epochs`), and the best epoch.
struct Replay {
    lrs: Vec<f64>,
    stopped_after: Option<usize>,
    best_epoch: usize,
    drops: usize,
}

fn replay(
    val_losses: &[f64],
    lr: f64,
    patience: usize,
    early_stop: usize,
    epochs: usize,
) -> Replay {
    let (mut lr, mut best, mut best_epoch) = (lr, f64::INFINITY, 0);
    let (mut wait, mut since_best, mut drops) = (0, 0, 0);
    let mut lrs = Vec::new();
    for (i, &loss) in val_losses.iter().enumerate() {
        lrs.push(lr);
        if loss < best {
            (best, best_epoch, wait, since_best) = (loss, i + 1, 0, 0);
        } else {
            since_best += 1;
            wait += 1;
            if wait >= patience {
                lr *= 0.1;
                wait = 0;
                drops += 1;
            }
        }
        // The run checks at the start of the next epoch: after the last one there is none.
        if since_best >= early_stop && i + 1 < epochs {
            return Replay {
                lrs,
                stopped_after: Some(i + 1),
                best_epoch,
                drops,
            };
        }
    }
    Replay {
        lrs,
        stopped_after: None,
        best_epoch,
        drops,
    }
}

#[test]
fn plateau_drops_early_stop_and_the_best_epoch_follow_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    class_tree(&data, &["a", "b", "c"], 10);
    let run_dir = dir.path().join("run");
    let (epochs, patience, early_stop, lr) = (25, 1, 3, 0.003);
    let (epochs_arg, lr_arg) = (epochs.to_string(), lr.to_string());
    let (patience_arg, early_stop_arg) = (patience.to_string(), early_stop.to_string());
    #[rustfmt::skip]
    let rules = [
        "--seed", "7", "--epochs", &epochs_arg, "--lr", &lr_arg, "--patience", &patience_arg,
        "--early-stop", &early_stop_arg, "--no-augment",
    ];
    train_small("train-teacher", &data, &run_dir, &rules);

    let history = json(&run_dir.join("metrics.json"));
    let history = history.as_array().unwrap();
    let field =
        |name: &str| -> Vec<f64> { history.iter().map(|r| r[name].as_f64().unwrap()).collect() };
    let expected = replay(&field("val_loss"), lr, patience, early_stop, epochs);
    let ran = history.len();
    assert_eq!(
        expected.stopped_after.unwrap_or(epochs),
        ran,
        "epochs run: {:?}",
        field("val_loss")
    );
    for (got, want) in field("lr").iter().zip(&expected.lrs) {
        assert!(
            (got - want).abs() <= 1e-12 * want.max(1e-30),
            "lr {got} vs {want}"
        );
    }

    // Each rule fired in this seeded run (25 epochs on 30 tiny images overfit early), and the
    // log says so.
    let log = std::fs::read_to_string(run_dir.join("log.txt")).unwrap();
    assert!(expected.drops >= 1, "no plateau in {:?}", field("val_loss"));
    assert_eq!(
        log.matches("learning rate now").count(),
        expected.drops,
        "{log}"
    );
    assert!(expected.stopped_after.is_some(), "{:?}", field("val_loss"));
    assert!(log.contains("early stop"), "{log}");
    assert!(
        log.contains(&format!("at epoch {} →", expected.best_epoch)),
        "best epoch {} not in {log}",
        expected.best_epoch
    );
}

#[test]
fn a_sweep_trains_each_point_once_tabulates_them_and_keeps_the_best_by_validation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    class_tree(&data, &["a", "b", "c"], 10);
    let teacher_run = dir.path().join("teacher");
    train_small("train-teacher", &data, &teacher_run, &["--epochs", "2"]);

    // α = 1 ignores the temperature: 2 × 2 values give 3 students, not 4 (the second label-only
    // point used to collide with the first and stop the sweep).
    let sweep_run = dir.path().join("sweep");
    let teacher = teacher_run.join("teacher.kdlens");
    #[rustfmt::skip]
    let sweep = [
        "--epochs", "2", "--teacher", teacher.to_str().unwrap(),
        "--sweep", "alpha=0.5,1", "--sweep", "temperature=2,4",
    ];
    train_small("distill", &data, &sweep_run, &sweep);

    let points = json(&sweep_run.join("sweep.json"));
    let points = points.as_array().unwrap();
    let names: Vec<&str> = points.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha0.5-t2", "alpha0.5-t4", "labels-only"]);
    let table = std::fs::read_to_string(sweep_run.join("sweep.md")).unwrap();
    for name in &names {
        assert_eq!(table.matches(&format!("| {name} |")).count(), 1, "{table}");
        assert!(
            sweep_run.join(name).join("student.kdlens").exists(),
            "{name}"
        );
    }
    let best_accuracy = points
        .iter()
        .map(|p| p["val_accuracy"].as_f64().unwrap())
        .fold(f64::NEG_INFINITY, f64::max);
    let kept = std::fs::read(sweep_run.join("student.kdlens")).unwrap();
    let chosen: Vec<&serde_json::Value> = points
        .iter()
        .filter(|p| std::fs::read(p["path"].as_str().unwrap()).unwrap() == kept)
        .collect();
    assert_eq!(
        chosen.len(),
        1,
        "student.kdlens is one of the points' students"
    );
    assert_eq!(chosen[0]["val_accuracy"].as_f64().unwrap(), best_accuracy);
}
