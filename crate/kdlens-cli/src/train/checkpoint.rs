//! Resumable training state, written atomically after every epoch.
//!
//! One file holds everything: the loop's state (JSON), the model's parameters and the optimizer's
//! moments (burnpack), and a SHA-256 of it all. The newest two checkpoints are kept; a corrupt
//! newest one falls back to the previous.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsutil::write_atomic;

const MAGIC: [u8; 8] = *b"KDLCKPT1";

/// One epoch's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (on augmented images).
    pub train_accuracy: f64,
    /// Validation loss (same objective as training).
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
}

/// The training loop's state after a completed epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Epochs completed.
    pub epoch: usize,
    /// Learning rate for the next epoch.
    pub lr: f64,
    /// Best validation loss so far.
    pub best_val_loss: f64,
    /// Epoch of the best validation loss.
    pub best_epoch: usize,
    /// Epochs since the learning rate was last reduced or the loss improved.
    pub plateau_wait: usize,
    /// Epochs since the validation loss last improved.
    pub since_best: usize,
    /// Every epoch so far.
    pub history: Vec<EpochRecord>,
}

/// A checkpoint's parts.
pub struct Checkpoint {
    /// The loop's state.
    pub state: LoopState,
    /// Model parameters, burnpack.
    pub model: Vec<u8>,
    /// Optimizer state, burnpack.
    pub optimizer: Vec<u8>,
}

fn put(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u64).to_le_bytes());
    out.extend_from_slice(part);
}

fn get<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?) as usize;
    let part = rest.get(8..8usize.checked_add(len)?)?;
    *rest = &rest[8 + len..];
    Some(part)
}

impl Checkpoint {
    fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = MAGIC.to_vec();
        put(&mut out, &serde_json::to_vec(&self.state)?);
        put(&mut out, &self.model);
        put(&mut out, &self.optimizer);
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        Ok(out)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < MAGIC.len() + 32 || bytes[..8] != MAGIC {
            return Err("not a kdlens checkpoint".into());
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err("checksum mismatch (the file is damaged or was cut short)".into());
        }
        let mut rest = &body[8..];
        let parts: Option<Vec<&[u8]>> = (0..3).map(|_| get(&mut rest)).collect();
        let parts = parts.ok_or("truncated checkpoint")?;
        let state = serde_json::from_slice(parts[0]).map_err(|e| format!("bad state: {e}"))?;
        Ok(Self {
            state,
            model: parts[1].to_vec(),
            optimizer: parts[2].to_vec(),
        })
    }
}

/// The checkpoint folder of a run: `last.ckpt` and `previous.ckpt`.
pub struct Checkpoints {
    dir: PathBuf,
}

impl Checkpoints {
    /// Checkpoints under `dir` (created). Temporary files left by a process killed while
    /// writing a checkpoint are removed: they are incomplete by construction.
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for entry in std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .flatten()
        {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(".last.ckpt.tmp-")
            {
                std::fs::remove_file(entry.path()).ok();
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn last(&self) -> PathBuf {
        self.dir.join("last.ckpt")
    }

    fn previous(&self) -> PathBuf {
        self.dir.join("previous.ckpt")
    }

    /// Saves a checkpoint: the current `last.ckpt` becomes `previous.ckpt`, then the new one is
    /// written atomically.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let bytes = checkpoint.to_bytes()?;
        if self.last().exists() {
            std::fs::rename(self.last(), self.previous())
                .with_context(|| format!("cannot rotate checkpoints in {}", self.dir.display()))?;
        }
        write_atomic(&self.last(), &bytes)
    }

    /// The newest readable checkpoint, or `None` when there is none yet. A damaged newest one
    /// is reported through `warn` and the previous one used.
    pub fn load_latest(&self, warn: impl Fn(String)) -> Result<Option<Checkpoint>> {
        let mut failures = Vec::new();
        for path in [self.last(), self.previous()] {
            match std::fs::read(&path) {
                Ok(bytes) => match Checkpoint::from_bytes(&bytes) {
                    Ok(checkpoint) => {
                        if !failures.is_empty() {
                            warn(format!(
                                "warning: {}; resuming from {} (epoch {})",
                                failures.join("; "),
                                path.display(),
                                checkpoint.state.epoch
                            ));
                        }
                        return Ok(Some(checkpoint));
                    }
                    Err(reason) => {
                        failures.push(format!("{} is unusable: {reason}", path.display()))
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => failures.push(format!("cannot read {}: {e}", path.display())),
            }
        }
        if failures.is_empty() {
            Ok(None)
        } else {
            bail!("no usable checkpoint: {}", failures.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(epoch: usize) -> Checkpoint {
        Checkpoint {
            state: LoopState {
                epoch,
                lr: 1e-3,
                best_val_loss: 0.5,
                best_epoch: 1,
                plateau_wait: 0,
                since_best: 0,
                history: vec![],
            },
            model: vec![1, 2, 3],
            optimizer: vec![4, 5],
        }
    }

    #[test]
    fn newest_checkpoint_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Checkpoints::new(dir.path()).unwrap();
        assert!(store.load_latest(|_| {}).unwrap().is_none());
        store.save(&checkpoint(1)).unwrap();
        store.save(&checkpoint(2)).unwrap();
        let loaded = store.load_latest(|w| panic!("{w}")).unwrap().unwrap();
        assert_eq!(loaded.state.epoch, 2);
        assert_eq!(
            (loaded.model, loaded.optimizer),
            (vec![1, 2, 3], vec![4, 5])
        );
    }

    #[test]
    fn corrupt_newest_checkpoint_falls_back_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let store = Checkpoints::new(dir.path()).unwrap();
        store.save(&checkpoint(1)).unwrap();
        store.save(&checkpoint(2)).unwrap();
        let last = dir.path().join("last.ckpt");
        let mut bytes = std::fs::read(&last).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&last, bytes).unwrap();
        let warnings = std::cell::RefCell::new(Vec::new());
        let loaded = store
            .load_latest(|w| warnings.borrow_mut().push(w))
            .unwrap()
            .unwrap();
        assert_eq!(loaded.state.epoch, 1);
        assert!(
            warnings.borrow()[0].contains("checksum"),
            "{:?}",
            warnings.borrow()
        );
    }

    #[test]
    fn truncated_checkpoints_everywhere_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Checkpoints::new(dir.path()).unwrap();
        std::fs::write(dir.path().join("last.ckpt"), b"KDLCKPT1short").unwrap();
        let err = store.load_latest(|_| {}).err().unwrap().to_string();
        assert!(err.contains("no usable checkpoint"), "{err}");
    }
}
