//! Training that survives being killed and refuses to start where it cannot save its work.

mod common;

use std::{
    path::Path,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use common::{files_under, json, kdlens, text};

/// A seeded teacher run on Fashion-MNIST, long enough to be interrupted several times.
fn teacher_args(run: &Path) -> Vec<String> {
    [
        "--run-dir",
        run.to_str().unwrap(),
        "train-teacher",
        "--data",
        "fashion-mnist",
        "--limit-per-class",
        "12",
        "--test-limit-per-class",
        "4",
        "--image-size",
        "32",
        "--grayscale",
        "--epochs",
        "6",
        "--batch-size",
        "16",
        "--lr",
        "0.001",
        "--no-vflip",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn losses(metrics: &serde_json::Value) -> Vec<(f64, f64)> {
    metrics
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["train_loss"].as_f64().unwrap(),
                r["val_loss"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Temporary checkpoint files in `run/checkpoints` (present only while one is being written).
fn temporary_checkpoints(run: &Path) -> Vec<String> {
    std::fs::read_dir(run.join("checkpoints"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

enum KillAt {
    /// After this long.
    Delay(Duration),
    /// While a checkpoint is being written.
    CheckpointWrite,
}

/// Waits for the moment `at` and kills `child` with SIGKILL; returns whether it was killed (it
/// may have finished first) and, for a checkpoint-write kill, whether the write was cut short.
fn kill_at(child: &mut Child, run: &Path, at: &KillAt) -> (bool, bool) {
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (false, false);
        }
        let due = match at {
            KillAt::Delay(delay) => started.elapsed() >= *delay,
            KillAt::CheckpointWrite => !temporary_checkpoints(run).is_empty(),
        };
        if due {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            return (true, !temporary_checkpoints(run).is_empty());
        }
        assert!(started.elapsed() < Duration::from_secs(600), "run hangs");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Kills a seeded run six times — at pseudo-random moments and while checkpoints are being
/// written — resuming after each kill, and expects exactly the metrics of an uninterrupted run.
#[test]
fn a_run_killed_at_random_points_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    let started = Instant::now();
    let out = kdlens().args(teacher_args(&straight)).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let full_run = started.elapsed();

    let killed = dir.path().join("killed");
    // A fixed xorshift sequence: random kill points that are the same on every run of the test.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next_fraction = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 1000) as f64 / 1000.0
    };
    let mut kills = 0;
    let mut torn_writes = 0;
    for attempt in 0..6 {
        let args = if killed.join("config.toml").exists() {
            vec![
                "train-teacher".to_string(),
                "--resume".into(),
                killed.to_str().unwrap().into(),
            ]
        } else {
            teacher_args(&killed)
        };
        let mut child = kdlens()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let at = if attempt % 2 == 1 {
            KillAt::CheckpointWrite
        } else {
            KillAt::Delay(full_run.mul_f64(0.1 + 0.35 * next_fraction()))
        };
        let (was_killed, torn) = kill_at(&mut child, &killed, &at);
        kills += usize::from(was_killed);
        torn_writes += usize::from(torn);
    }
    assert!(
        kills >= 5,
        "only {kills} kills landed before the run finished"
    );
    assert!(torn_writes >= 1, "no kill landed inside a checkpoint write");

    let out = kdlens()
        .args(["train-teacher", "--resume", killed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        losses(&json(&straight.join("metrics.json"))),
        losses(&json(&killed.join("metrics.json")))
    );
    assert_eq!(
        json(&straight.join("teacher_metrics.json"))["report"],
        json(&killed.join("teacher_metrics.json"))["report"]
    );
    assert_eq!(
        temporary_checkpoints(&killed),
        Vec::<String>::new(),
        "torn temporary files are cleaned up"
    );
}

/// Trains under a file-size limit of `kib` KiB, with SIGXFSZ ignored so that a write past it
/// fails with EFBIG: to the program, a disk that is full.
fn train_with_file_size_limit(run: &Path, kib: u64) -> std::process::Output {
    let mut command = std::process::Command::new("bash");
    command
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_kdlens"))
        .args(teacher_args(run))
        .env("BURN_DEVICE", "flex");
    command.output().unwrap()
}

#[test]
fn a_full_disk_is_a_clear_error_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let started = Instant::now();
    let out = train_with_file_size_limit(&run, 0);
    let message = text(&out);
    assert!(!out.status.success(), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    assert!(
        message.contains(&run.display().to_string()) && message.contains("not writable"),
        "{message}"
    );
    assert!(!message.contains("epoch"), "no training began: {message}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_disk_that_fills_during_training_stops_with_a_clear_error_and_no_torn_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // 8 MiB per file: the log and config fit, a DenseNet-121 model (≈28 MB) does not.
    let out = train_with_file_size_limit(&run, 8 * 1024);
    let message = text(&out);
    assert!(!out.status.success(), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    // The first large file of the epoch (the best model or the checkpoint) is named.
    assert!(
        message.contains("cannot write") && message.contains(&run.display().to_string()),
        "{message}"
    );
    assert!(message.contains("File too large"), "{message}");
    let torn: Vec<_> = files_under(&run)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(torn.is_empty(), "half-written files left: {torn:?}");
    assert!(!run.join("checkpoints/last.ckpt").exists());
    assert!(run.join("config.toml").exists(), "what was saved is kept");
}

#[test]
fn a_read_only_run_folder_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(run.join("probe"), b"x").is_ok() {
        // Running as root: permissions do not stop us; the full-disk tests cover this path.
        eprintln!("skipped: permissions do not apply to this user");
        return;
    }
    let out = kdlens().args(teacher_args(&run)).output().unwrap();
    let message = text(&out);
    assert!(!out.status.success(), "{message}");
    assert!(
        message.contains(&run.display().to_string()) && message.contains("not writable"),
        "{message}"
    );
}
