//! Folder-per-class image trees, as the Kaggle sets ship them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{ImageRef, Sample};

/// File name endings read as images and scans (lower case).
const IMAGE_EXTENSIONS: [&str; 13] = [
    "png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff", "gif", "jfif", "dcm", "dicom", "nii",
    "nii.gz",
];

/// Whether `path`'s name ends in one of [`IMAGE_EXTENSIONS`].
fn is_image_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    IMAGE_EXTENSIONS
        .iter()
        .any(|ext| name.len() > ext.len() + 1 && name.ends_with(&format!(".{ext}")))
}

/// A scanned tree.
pub struct Layout {
    pub classes: Vec<String>,
    pub train: Vec<Sample>,
    pub test: Option<Vec<Sample>>,
    pub origin: String,
}

/// Finds `ROOT/{Training,Testing}/<class>/*` (also `train`/`test`, any case) or `ROOT/<class>/*`.
pub fn scan(root: &Path) -> Result<Layout> {
    let subdirs = list_dirs(root)?;
    let find = |names: &[&str]| {
        subdirs
            .iter()
            .find(|d| names.iter().any(|n| file_name(d).eq_ignore_ascii_case(n)))
            .cloned()
    };
    match (find(&["training", "train"]), find(&["testing", "test"])) {
        (Some(train_dir), Some(test_dir)) => {
            let (train_classes, train) = read_classes(&train_dir, None)?;
            let (test_classes, _) = class_dirs(&test_dir)?;
            if test_classes != train_classes {
                let missing: Vec<_> = train_classes
                    .iter()
                    .filter(|c| !test_classes.contains(c))
                    .collect();
                let extra: Vec<_> = test_classes
                    .iter()
                    .filter(|c| !train_classes.contains(c))
                    .collect();
                bail!(
                    "the class folders of {} and {} differ: missing from the test set {:?}, \
                     only in the test set {:?}",
                    train_dir.display(),
                    test_dir.display(),
                    missing,
                    extra
                );
            }
            let (_, test) = read_classes(&test_dir, Some(&train_classes))?;
            Ok(Layout {
                origin: format!(
                    "image folders {} (train) and {} (test)",
                    train_dir.display(),
                    test_dir.display()
                ),
                classes: train_classes,
                train,
                test: Some(test),
            })
        }
        (Some(only), None) | (None, Some(only)) => bail!(
            "{} has {} but no matching {} folder; give both, or a folder with one subfolder per class",
            root.display(),
            file_name(&only),
            if find(&["training", "train"]).is_some() {
                "Testing"
            } else {
                "Training"
            }
        ),
        (None, None) => {
            let (classes, train) = read_classes(root, None)?;
            Ok(Layout {
                origin: format!("image folders {} (split by kdlens)", root.display()),
                classes,
                train,
                test: None,
            })
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_hidden(path: &Path) -> bool {
    file_name(path).starts_with('.')
}

/// Sub-directories of `dir`, sorted, hidden ones skipped.
fn list_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.is_dir() && !is_hidden(&path) {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Class names (sorted sub-directory names) and their directories.
fn class_dirs(dir: &Path) -> Result<(Vec<String>, Vec<PathBuf>)> {
    let dirs = list_dirs(dir)?;
    Ok((dirs.iter().map(|d| file_name(d)).collect(), dirs))
}

/// Every image file of every class folder of `dir`, labelled by the class order of `classes`
/// (or by `dir`'s own sorted folders).
fn read_classes(dir: &Path, classes: Option<&[String]>) -> Result<(Vec<String>, Vec<Sample>)> {
    let (names, dirs) = class_dirs(dir)?;
    let order = classes.map(|c| c.to_vec()).unwrap_or_else(|| names.clone());
    if order.len() < 2 {
        bail!(
            "{} needs at least two class folders (one per class), found {}",
            dir.display(),
            order.len()
        );
    }
    let mut samples = Vec::new();
    for (name, class_dir) in names.iter().zip(&dirs) {
        let label = order
            .iter()
            .position(|c| c == name)
            .expect("class sets were compared");
        let entries = std::fs::read_dir(class_dir)
            .with_context(|| format!("cannot list class folder {}", class_dir.display()))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry
                .with_context(|| format!("cannot list class folder {}", class_dir.display()))?
                .path();
            if is_image_name(&path) && !is_hidden(&path) && !path.is_dir() {
                files.push(path);
            }
        }
        if files.is_empty() {
            bail!(
                "class folder {} holds no images ({}); remove it or add images",
                class_dir.display(),
                IMAGE_EXTENSIONS.join(", ")
            );
        }
        files.sort();
        samples.extend(files.into_iter().map(|p| Sample {
            image: ImageRef::File(p),
            label,
        }));
    }
    Ok((order, samples))
}
