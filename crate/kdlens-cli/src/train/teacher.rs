//! The teacher's logits a distillation run learns from.
//!
//! The teacher runs in inference mode, so its logits for an image depend only on the image the
//! student sees. When augmentation can only flip (or there is none), every training image has at
//! most four variants, and their logits are computed once for the whole run; with continuous
//! augmentation (shift, zoom, rotation) the teacher runs on each augmented batch.

use anyhow::Result;
use burn::tensor::{Device, Tensor, TensorData};
use kdlens::model::{Classifier, LayeredClassifier};

use super::{inference, step::images_tensor};
use crate::data::{
    ImageCache,
    augment::{Augmentation, Transform},
};

/// The teacher's logits for training batches and for the validation set.
pub struct TeacherLogits<'a> {
    teacher: &'a Classifier,
    classes: usize,
    /// Row-major `[train.len(), classes]` logits per flip variant ([`Transform::flip_variant`]);
    /// `None` for a variant the augmentation never draws, or for all of them under continuous
    /// augmentation.
    train_variants: [Option<Vec<f32>>; 4],
    /// Row-major `[val.len(), classes]` logits of the unaugmented validation images.
    pub val: Vec<f32>,
}

/// The flip variants `augmentation` can draw, when it draws nothing but flips.
fn flip_variants(augmentation: Option<&Augmentation>) -> Vec<usize> {
    match augmentation {
        None => vec![0],
        Some(a) if a.flips_only() => (0..4)
            .filter(|v| (v & 1 == 0 || a.horizontal_flip) && (v & 2 == 0 || a.vertical_flip))
            .collect(),
        Some(_) => vec![],
    }
}

impl<'a> TeacherLogits<'a> {
    /// Runs `teacher` over the validation set and, where augmentation allows, over every flip
    /// variant of the training set, in batches of `batch` on `device`.
    pub fn compute(
        teacher: &'a Classifier,
        train: &ImageCache,
        val: &ImageCache,
        augmentation: Option<&Augmentation>,
        preprocessing: &kdlens::image::Preprocessing,
        device: &Device,
        batch: usize,
    ) -> Result<Self> {
        let logits_under = |cache, transform| {
            inference::logits(teacher, cache, preprocessing, device, batch, transform)
        };
        let val = logits_under(val, Transform::identity())?;
        let mut train_variants = [None, None, None, None];
        for v in flip_variants(augmentation) {
            train_variants[v] = Some(logits_under(train, Transform::flips(v))?);
        }
        Ok(Self {
            teacher,
            classes: teacher.num_classes(),
            train_variants,
            val,
        })
    }

    /// The teacher's logits `[n, classes]` for a training batch: the training images `indices`
    /// under `transforms`, whose preprocessed values (`[n, 3, h, w]`, row-major) are `images`.
    /// Cached rows when every transform is a cached flip variant; otherwise the teacher runs on
    /// `images`.
    pub fn for_batch(
        &self,
        indices: &[usize],
        transforms: &[Transform],
        images: &[f32],
        size: [usize; 2],
        device: &Device,
    ) -> Tensor<2> {
        let n = indices.len();
        match self.cached_rows(indices, transforms) {
            Some(rows) => Tensor::from_data(TensorData::new(rows, [n, self.classes]), device),
            None => self
                .teacher
                .forward(images_tensor(images.to_vec(), n, size, device)),
        }
    }

    fn cached_rows(&self, indices: &[usize], transforms: &[Transform]) -> Option<Vec<f32>> {
        let c = self.classes;
        let mut rows = Vec::with_capacity(indices.len() * c);
        for (&i, t) in indices.iter().zip(transforms) {
            if *t != Transform::flips(t.flip_variant()) {
                return None;
            }
            let logits = self.train_variants[t.flip_variant()].as_ref()?;
            rows.extend_from_slice(&logits[i * c..(i + 1) * c]);
        }
        Some(rows)
    }
}

#[cfg(test)]
mod tests {
    use burn::{module::Module, tensor::Device};
    use kdlens::{
        image::{Preprocessing, RgbaImage},
        model::{Architecture, ModelSpec},
    };

    use super::*;
    use crate::data::{ImageRef, Sample};

    /// Five RGB images with distinct, asymmetric content (so that every flip changes them).
    fn cache(size: [usize; 2], preprocessing: &Preprocessing) -> ImageCache {
        let samples: Vec<Sample> = (0..5u32)
            .map(|k| {
                let [h, w] = size;
                let pixels: Vec<u8> = (0..h * w)
                    .flat_map(|p| {
                        let (x, y, k) = (p % w, p / w, k as usize);
                        [
                            (x * 7 + k * 40) as u8,
                            (y * y + k) as u8,
                            ((x * y + 3 * k) % 251) as u8,
                            255,
                        ]
                    })
                    .collect();
                let image = RgbaImage::new(w, h, pixels).unwrap();
                Sample {
                    image: ImageRef::Memory(std::sync::Arc::new(image), format!("image {k}")),
                    label: k as usize % 3,
                }
            })
            .collect();
        ImageCache::build(&samples, preprocessing, &|| ()).0
    }

    /// Under flips-only augmentation the cached rows are exactly what the teacher gives for the
    /// augmented batch. Nothing is cached under continuous augmentation, and a transform that
    /// is more than a flip is never served from the flip cache.
    #[test]
    fn cached_teacher_logits_equal_the_teacher_on_the_augmented_batch() {
        let _stream = crate::train::DEVICE_RANDOM_STREAM
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let device = Device::flex();
        let size = [32, 32];
        let teacher = ModelSpec::new(Architecture::FiveLayer, 3, size)
            .unwrap()
            .init(&device)
            .unwrap()
            .valid();
        let preprocessing = Preprocessing::unit_range(size);
        let train = cache(size, &preprocessing);
        let indices = [4usize, 0, 2, 3];
        let logits_under = |augmentation: &Augmentation| {
            TeacherLogits::compute(
                &teacher,
                &train,
                &train,
                Some(augmentation),
                &preprocessing,
                &device,
                3,
            )
            .unwrap()
        };

        let flips = Augmentation {
            horizontal_flip: true,
            vertical_flip: true,
            ..Augmentation::none()
        };
        let cached = logits_under(&flips);
        let transforms: Vec<Transform> = (0..4).map(|p| flips.draw(100 + p as u64)).collect();
        let mut variants: Vec<usize> = transforms.iter().map(Transform::flip_variant).collect();
        variants.sort();
        variants.dedup();
        assert!(
            variants.len() > 2,
            "the batch mixes flip variants: {variants:?}"
        );
        let rows = cached
            .cached_rows(&indices, &transforms)
            .expect("flips are served from the cache");
        let images = train.batch(&indices, |p| transforms[p], &preprocessing);
        let expected: Vec<f32> = teacher
            .forward(images_tensor(images, indices.len(), size, &device))
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        let worst = rows
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "max difference {worst}");

        let mut shifted = transforms.clone();
        shifted[2].shift = [0.1, 0.0];
        assert!(cached.cached_rows(&indices, &shifted).is_none());
        let continuous = Augmentation::default();
        let drawn: Vec<Transform> = (0..4).map(|p| continuous.draw(p as u64)).collect();
        assert!(
            logits_under(&continuous)
                .cached_rows(&indices, &drawn)
                .is_none()
        );
    }
}
