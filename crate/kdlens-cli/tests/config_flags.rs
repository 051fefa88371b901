//! A run repeated with `--config` or continued with `--resume` takes every setting from its
//! `config.toml`: a flag given beside it is refused by name, never silently ignored.

mod common;

use common::{run, text};

#[test]
fn flags_beside_config_or_resume_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let config = config.to_str().unwrap();
    let out_dir = dir.path().join("out");
    let out_dir = out_dir.to_str().unwrap();

    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--seed", "1", "distill", "--config", config],
            &["--seed cannot be combined with --config"],
        ),
        (
            &[
                "train-teacher",
                "--config",
                config,
                "--epochs",
                "3",
                "--grayscale",
            ],
            &[
                "--epochs",
                "--grayscale",
                "cannot be combined with --config",
            ],
        ),
        (
            &[
                "distill", "--config", config, "--device", "wgpu", "--window", "brain",
            ],
            &["--device", "--window", "cannot be combined with --config"],
        ),
        (
            &["train-teacher", "--resume", out_dir, "--lr", "0.01"],
            &[
                "--lr cannot be combined with --resume",
                "settings it started with",
            ],
        ),
        (
            &["--run-dir", out_dir, "distill", "--resume", out_dir],
            &["--run-dir cannot be combined with --resume"],
        ),
    ];
    for (args, expected) in cases {
        let out = run(args);
        let said = text(&out);
        assert!(!out.status.success(), "{args:?} must be refused: {said}");
        for phrase in expected {
            assert!(said.contains(phrase), "{args:?}: {phrase:?} not in {said}");
        }
    }
    assert!(
        !dir.path().join("out").exists(),
        "a refused command writes nothing"
    );

    // Allowed: `--run-dir` with `--config`; the command then goes on to read the file (which
    // is missing here) instead of refusing the combination.
    let out = run(&["--run-dir", out_dir, "distill", "--config", config]);
    let said = text(&out);
    assert!(!out.status.success());
    assert!(!said.contains("cannot be combined"), "{said}");
    assert!(
        said.contains("cannot read") && said.contains("config.toml"),
        "{said}"
    );
}
