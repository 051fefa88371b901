//! Data sources and their train / validation / test splits.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result, bail};
use kdlens::image::{RgbaImage, scan::ScanOptions};
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{folders, idx};

/// Where Debian's `dataset-fashion-mnist` package puts the IDX files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Fashion-MNIST's class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// A labelled image set on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "path", rename_all = "kebab-case")]
pub enum DataSource {
    /// Folder-per-class images: `ROOT/Training/<class>/*` + `ROOT/Testing/<class>/*`, or
    /// `ROOT/<class>/*` split by kdlens.
    Folders(PathBuf),
    /// Fashion-MNIST IDX files (`train-images-idx3-ubyte.gz` …) in a directory.
    FashionMnist(PathBuf),
}

impl DataSource {
    /// `fashion-mnist` (Debian's copy), a directory holding Fashion-MNIST IDX files, or an image
    /// folder tree.
    pub fn parse(text: &str) -> Result<Self> {
        if text == "fashion-mnist" {
            return Ok(DataSource::FashionMnist(PathBuf::from(FASHION_MNIST_DIR)));
        }
        let path = PathBuf::from(text);
        if !path.is_dir() {
            bail!(
                "data path {} is not a directory (or `fashion-mnist`)",
                path.display()
            );
        }
        if idx_file(&path, "train-images-idx3-ubyte").is_some() {
            Ok(DataSource::FashionMnist(path))
        } else {
            Ok(DataSource::Folders(path))
        }
    }
}

/// `dir/name.gz` or `dir/name`, whichever exists.
fn idx_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [format!("{name}.gz"), name.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// One image: a file, or pixels already in memory (IDX sets).
#[derive(Debug, Clone)]
pub enum ImageRef {
    /// An image file.
    File(PathBuf),
    /// Decoded pixels and a name for messages.
    Memory(Arc<RgbaImage>, String),
}

impl ImageRef {
    /// The path, or the in-memory image's name.
    pub fn describe(&self) -> String {
        match self {
            ImageRef::File(path) => path.display().to_string(),
            ImageRef::Memory(_, name) => name.clone(),
        }
    }

    /// The pixels, decoding the file if needed (a DICOM or NIfTI scan as `scan` says).
    pub fn load(&self, scan: &ScanOptions) -> Result<RgbaImage, String> {
        match self {
            ImageRef::File(path) => kdlens::image::decode_file_with(path, scan)
                .map(|decoded| decoded.image)
                .map_err(|e| e.to_string()),
            ImageRef::Memory(image, _) => Ok((**image).clone()),
        }
    }
}

/// An image and its class index.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The image.
    pub image: ImageRef,
    /// Index into [`Splits::classes`].
    pub label: usize,
}

/// How to split and subsample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitOptions {
    /// Fraction of each training class held out for validation.
    pub val_fraction: f64,
    /// Fraction of each class held out for testing when the data has no test split.
    pub test_fraction: f64,
    /// At most this many training-pool images per class (before the validation split).
    pub limit_per_class: Option<usize>,
    /// At most this many test images per class.
    pub test_limit_per_class: Option<usize>,
    /// Seed of the shuffles.
    pub seed: u64,
}

/// The three splits of a labelled set.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// Training images.
    pub train: Vec<Sample>,
    /// Validation images (stratified from the training pool).
    pub val: Vec<Sample>,
    /// Test images.
    pub test: Vec<Sample>,
    /// A sentence on where the data came from.
    pub origin: String,
}

impl Splits {
    /// Loads `source` and splits it as `options` say.
    pub fn load(source: &DataSource, options: &SplitOptions) -> Result<Self> {
        for (name, f) in [
            ("validation", options.val_fraction),
            ("test", options.test_fraction),
        ] {
            if !(0.0..1.0).contains(&f) {
                bail!("the {name} fraction must lie in [0, 1), got {f}");
            }
        }
        let (classes, pool, test, origin) = match source {
            DataSource::Folders(root) => {
                let layout = folders::scan(root)?;
                match layout.test {
                    Some(test) => (layout.classes, layout.train, test, layout.origin),
                    None => {
                        let (test, train) = stratified_split(
                            layout.train,
                            layout.classes.len(),
                            options.test_fraction,
                            options.seed ^ 0x7e57,
                        );
                        (layout.classes, train, test, layout.origin)
                    }
                }
            }
            DataSource::FashionMnist(dir) => fashion_mnist(dir)?,
        };
        let pool = limit(pool, classes.len(), options.limit_per_class, options.seed);
        let test = limit(
            test,
            classes.len(),
            options.test_limit_per_class,
            options.seed ^ 0x7e57,
        );
        let (val, train) =
            stratified_split(pool, classes.len(), options.val_fraction, options.seed);
        if train.is_empty() {
            bail!("no training images left after the validation split of {origin}");
        }
        Ok(Self {
            classes,
            train,
            val,
            test,
            origin,
        })
    }

    /// SHA-256 over every split's image names and labels: identifies the data a model saw.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for (split, samples) in [
            ("train", &self.train),
            ("val", &self.val),
            ("test", &self.test),
        ] {
            for s in samples {
                hash.update(format!(
                    "{split}\t{}\t{}\n",
                    s.image.describe(),
                    self.classes[s.label]
                ));
            }
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Groups sample indices by class.
fn by_class(samples: &[Sample], num_classes: usize) -> Vec<Vec<usize>> {
    let mut groups = vec![Vec::new(); num_classes];
    for (i, s) in samples.iter().enumerate() {
        groups[s.label].push(i);
    }
    groups
}

/// Seeded, stratified split: returns (`fraction` of each class, the rest).
fn stratified_split(
    samples: Vec<Sample>,
    num_classes: usize,
    fraction: f64,
    seed: u64,
) -> (Vec<Sample>, Vec<Sample>) {
    let mut held = vec![false; samples.len()];
    for (class, mut indices) in by_class(&samples, num_classes).into_iter().enumerate() {
        indices.shuffle(&mut StdRng::seed_from_u64(
            seed.wrapping_add(class as u64 * 0x9e37_79b9),
        ));
        let n = (indices.len() as f64 * fraction).round() as usize;
        for &i in &indices[..n.min(indices.len())] {
            held[i] = true;
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (s, h) in samples.into_iter().zip(held) {
        if h { a.push(s) } else { b.push(s) }
    }
    (a, b)
}

/// A seeded subset of at most `limit` samples per class, order preserved.
fn limit(samples: Vec<Sample>, num_classes: usize, limit: Option<usize>, seed: u64) -> Vec<Sample> {
    let Some(limit) = limit else { return samples };
    let mut keep = vec![false; samples.len()];
    for (class, mut indices) in by_class(&samples, num_classes).into_iter().enumerate() {
        indices.shuffle(&mut StdRng::seed_from_u64(
            seed.wrapping_add(class as u64 * 0x51_7cc1),
        ));
        for &i in indices.iter().take(limit) {
            keep[i] = true;
        }
    }
    samples
        .into_iter()
        .zip(keep)
        .filter_map(|(s, k)| k.then_some(s))
        .collect()
}

type Loaded = (Vec<String>, Vec<Sample>, Vec<Sample>, String);

fn fashion_mnist(dir: &Path) -> Result<Loaded> {
    let file = |name: &str| {
        idx_file(dir, name).with_context(|| {
            format!(
                "Fashion-MNIST file {name}(.gz) not found in {}; install Debian's \
                 `dataset-fashion-mnist` package or point --data at the IDX files",
                dir.display()
            )
        })
    };
    let mut splits = BTreeMap::new();
    for split in ["train", "t10k"] {
        let images = idx::read_images(&file(&format!("{split}-images-idx3-ubyte"))?)?;
        let labels = idx::read_labels(&file(&format!("{split}-labels-idx1-ubyte"))?)?;
        if images.len() != labels.len() {
            bail!(
                "{}: {} images but {} labels in the {split} split",
                dir.display(),
                images.len(),
                labels.len()
            );
        }
        if let Some(bad) = labels.iter().find(|&&l| l >= FASHION_MNIST_CLASSES.len()) {
            bail!(
                "{}: label {bad} in the {split} split; Fashion-MNIST has 10 classes",
                dir.display()
            );
        }
        let samples = images
            .into_iter()
            .zip(labels)
            .enumerate()
            .map(|(i, (image, label))| Sample {
                image: ImageRef::Memory(image, format!("fashion-mnist/{split}#{i}")),
                label,
            })
            .collect::<Vec<_>>();
        splits.insert(split, samples);
    }
    Ok((
        FASHION_MNIST_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        splits.remove("train").expect("inserted"),
        splits.remove("t10k").expect("inserted"),
        format!(
            "Fashion-MNIST (Zalando, MIT licence) from {}",
            dir.display()
        ),
    ))
}

/// Up to `count` of `samples`, round-robin over the classes in a seeded shuffle of each (every
/// class as evenly represented as its count allows).
pub fn stratified(samples: &[Sample], num_classes: usize, count: usize, seed: u64) -> Vec<&Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut by_class: Vec<Vec<&Sample>> = vec![Vec::new(); num_classes];
    for sample in samples {
        by_class[sample.label].push(sample);
    }
    for class in &mut by_class {
        class.shuffle(&mut rng);
    }
    let mut chosen = Vec::with_capacity(count);
    let mut round = 0;
    while chosen.len() < count && by_class.iter().any(|c| c.len() > round) {
        for class in &by_class {
            if let Some(sample) = class.get(round)
                && chosen.len() < count
            {
                chosen.push(*sample);
            }
        }
        round += 1;
    }
    chosen
}
