//! The run folder: every command's outputs, config and log in one place.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::fsutil::{ensure_writable_dir, write_atomic};

/// A run folder with a log file.
pub struct RunDir {
    path: PathBuf,
    log: Mutex<std::fs::File>,
}

impl RunDir {
    /// Opens (creating it if needed) `path`, or `runs/<command>-<UTC time>` when `None`, and
    /// checks that it is writable.
    pub fn open(path: Option<&Path>, command: &str) -> Result<Self> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => {
                let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string()
                    .replace([':', 'T'], "-")
                    .trim_end_matches('Z')
                    .to_string();
                PathBuf::from("runs").join(format!("{command}-{stamp}"))
            }
        };
        ensure_writable_dir(&path)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.join("log.txt"))
            .with_context(|| format!("cannot open the log in {}", path.display()))?;
        let run = Self {
            path,
            log: Mutex::new(log),
        };
        run.log_only(format!(
            "kdlens {command}: CPU kernels on {} (of {}; {} forces a lower one)",
            kdlens::simd::active(),
            kdlens::simd::available()
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(", "),
            kdlens::simd::ENV
        ));
        Ok(run)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `folder/name`.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Prints a line to stderr and appends it, time-stamped, to `log.txt`.
    pub fn log(&self, line: impl AsRef<str>) {
        let line = line.as_ref();
        eprintln!("{line}");
        self.log_only(line);
    }

    /// Appends a line to the log file only.
    fn log_only(&self, line: impl AsRef<str>) {
        let line = line.as_ref();
        if let Ok(mut log) = self.log.lock() {
            let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            writeln!(log, "{stamp} {line}").ok();
        }
    }

    /// Writes `value` as pretty JSON to `folder/name`, atomically.
    pub fn write_json(&self, name: &str, value: &impl Serialize) -> Result<PathBuf> {
        let path = self.join(name);
        write_atomic(&path, &serde_json::to_vec_pretty(value)?)?;
        Ok(path)
    }

    /// Writes text to `folder/name`, atomically.
    pub fn write_text(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.join(name);
        write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }

    /// Writes `value` as TOML to `folder/config.toml` (what `--config` reads back).
    pub fn write_config(&self, value: &impl Serialize) -> Result<PathBuf> {
        let text = toml::to_string_pretty(value)
            .context("cannot express the run configuration as TOML")?;
        self.write_text("config.toml", &text)
    }
}

/// Reads a run configuration written by [`RunDir::write_config`].
pub fn read_config<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("{} is not a valid kdlens run configuration", path.display()))
}
