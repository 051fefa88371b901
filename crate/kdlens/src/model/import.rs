//! Weights from and to other frameworks (native only: burn-store reads files).
//!
//! - [`load_torchvision_densenet`]: a torchvision DenseNet `state_dict` (`.pth`), including the
//!   ImageNet checkpoints torchvision publishes with their legacy key names.
//! - [`load_pytorch_state_dict`]: any kdlens model from a PyTorch `state_dict` whose keys are
//!   kdlens's parameter paths (how the parity fixtures are written).
//! - [`save_safetensors`]: a model in PyTorch layout as safetensors, for interop (PyTorch, Netron).

use std::path::Path;

use burn::{
    module::Module,
    store::{BurnToPyTorchAdapter, ModuleSnapshot, PathFilter, PytorchStore, SafetensorsStore},
};

use super::{Classifier, DenseNet};
use crate::{Error, Result};

/// Key rewrites from torchvision's DenseNet names to kdlens's: the legacy
/// `denselayer1.norm.1.weight` spelling of the published ImageNet checkpoints, then
/// `denseblockB.denselayerL` → `denseblockB.layers.L` (made 0-based by contiguous index mapping).
const TORCHVISION_KEYS: [(&str, &str); 2] = [
    (
        r"^(.*denselayer\d+)\.(norm|relu|conv)\.([12])\.(weight|bias|running_mean|running_var|num_batches_tracked)$",
        "$1.$2$3.$4",
    ),
    (
        r"^features\.denseblock(\d+)\.denselayer(\d+)\.",
        "features.denseblock$1.layers.$2.",
    ),
];

fn describe(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Weights(format!("{}: {e}", path.display()))
}

/// Loads a torchvision DenseNet `state_dict` into `model`, whose configuration must match the
/// checkpoint's (DenseNet-121 for torchvision's `densenet121` weights).
///
/// When the checkpoint's classifier has a different class count (ImageNet's 1000 against a
/// 4-class task), the classifier is left as initialised and everything else is loaded; the
/// returned flag says whether the classifier came from the checkpoint. Any other missing or
/// mis-shaped parameter is an error naming it.
pub fn load_torchvision_densenet(mut model: DenseNet, path: &Path) -> Result<(DenseNet, bool)> {
    let mut store = torchvision_store(path);
    match model.load_from(&mut store) {
        Ok(_) => Ok((model, true)),
        Err(full_error) => {
            let mut store = torchvision_store(path)
                .filter(PathFilter::new().with_regex(r"^features\."))
                .allow_partial(true);
            let result = model.load_from(&mut store).map_err(|e| describe(path, e))?;
            let outside_head: Vec<_> = result
                .missing
                .iter()
                .map(|(p, _)| p.as_str())
                .filter(|p| !p.starts_with("classifier"))
                .collect();
            if !outside_head.is_empty() || !result.errors.is_empty() {
                return Err(describe(path, full_error));
            }
            Ok((model, false))
        }
    }
}

fn torchvision_store(path: &Path) -> PytorchStore {
    TORCHVISION_KEYS
        .iter()
        .fold(PytorchStore::from_file(path), |store, (from, to)| {
            store.with_key_remapping(*from, *to)
        })
}

/// Loads a PyTorch `state_dict` whose keys are the model's own parameter paths (e.g.
/// `convs.0.weight`, `fc1.weight`); dense weights are transposed from PyTorch's `[out, in]`.
pub fn load_pytorch_state_dict<M: Module + ModuleSnapshot>(
    mut module: M,
    path: &Path,
) -> Result<M> {
    let mut store = PytorchStore::from_file(path);
    module
        .load_from(&mut store)
        .map_err(|e| describe(path, e))?;
    Ok(module)
}

/// Writes the model's parameters as safetensors in PyTorch's layout and naming (dense weights
/// `[out, in]`, BatchNorm `weight`/`bias`), so that `torch.nn.Module.load_state_dict` and Netron
/// read it. Written to a temporary file next to `path`, then renamed.
pub fn save_safetensors(model: &Classifier, path: &Path) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    let mut store = SafetensorsStore::from_file(&tmp)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata("producer", "kdlens");
    let saved = match model {
        Classifier::FiveLayer(m) => m.save_into(&mut store),
        Classifier::Kd8(m) => m.save_into(&mut store),
        Classifier::DenseNet(m) => m.save_into(&mut store),
    };
    saved.map_err(|e| describe(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| describe(path, e))
}
