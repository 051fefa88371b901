//! Decoded, resized images kept in memory for the whole run.

use kdlens::image::Preprocessing;
use rayon::prelude::*;

use super::{Sample, augment::Transform};

/// Images decoded and resized to the model input once, stored as `[3, height, width]` planes
/// of `f32` values in the 0–255 range (colour already converted), so epochs only augment and
/// normalise. The values are exactly what [`Preprocessing::resize`] returns, unrounded, so an
/// unaugmented batch is bit for bit the input `kdlens explain` and the page give the model
/// (12 bytes per pixel: 2.5 GB for 50,000 images at 64²).
pub struct ImageCache {
    size: [usize; 2],
    pixels: Vec<f32>,
    labels: Vec<usize>,
    names: Vec<String>,
}

/// Images that could not be used, with the reason.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// `(path or name, reason)` for each unusable image.
    pub bad: Vec<(String, String)>,
}

impl ImageCache {
    /// Decodes and resizes `samples` in parallel. Unusable images are left out and listed in
    /// the report; `on_progress` is called once per image.
    pub fn build(
        samples: &[Sample],
        preprocessing: &Preprocessing,
        on_progress: &(dyn Fn() + Sync),
    ) -> (Self, LoadReport) {
        let scan = preprocessing.scan_options();
        let results: Vec<Result<Vec<f32>, String>> = samples
            .par_iter()
            .map(|sample| {
                let result = sample
                    .image
                    .load(&scan)
                    .and_then(|image| preprocessing.resize(&image).map_err(|e| e.to_string()));
                on_progress();
                result
            })
            .collect();
        let [h, w] = preprocessing.input_size;
        let mut cache = Self {
            size: [h, w],
            pixels: Vec::with_capacity(samples.len() * 3 * h * w),
            labels: Vec::with_capacity(samples.len()),
            names: Vec::with_capacity(samples.len()),
        };
        let mut report = LoadReport::default();
        for (sample, result) in samples.iter().zip(results) {
            match result {
                Ok(pixels) => {
                    cache.pixels.extend(pixels);
                    cache.labels.push(sample.label);
                    cache.names.push(sample.image.describe());
                }
                Err(reason) => report.bad.push((sample.image.describe(), reason)),
            }
        }
        (cache, report)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the cache holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Class index of every image.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Path or name of image `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// `[height, width]` of the stored images.
    pub fn size(&self) -> [usize; 2] {
        self.size
    }

    /// Image `i` as `[3, height, width]` values in the 0–255 range.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = 3 * self.size[0] * self.size[1];
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The normalised batch `[indices.len(), 3, height, width]`, row-major, each image
    /// transformed by `transform(position in the batch)`.
    pub fn batch(
        &self,
        indices: &[usize],
        transform: impl Fn(usize) -> Transform + Sync,
        preprocessing: &Preprocessing,
    ) -> Vec<f32> {
        let n = 3 * self.size[0] * self.size[1];
        let mut out = vec![0.0f32; indices.len() * n];
        out.par_chunks_mut(n)
            .zip(indices.par_iter().enumerate())
            .for_each(|(slot, (position, &i))| {
                let mut image = transform(position).apply(self.image(i), self.size);
                preprocessing.normalize(&mut image);
                slot.copy_from_slice(&image);
            });
        out
    }
}

#[cfg(test)]
mod tests {
    use kdlens::image::{ColorMode, Normalization, decode_file_with};

    use super::*;
    use crate::data::ImageRef;

    /// Training's input for a file (through the cache, unaugmented) is bit for bit the input
    /// `kdlens explain` builds for it (`decode_file_with`, then `Preprocessing::to_chw`).
    #[test]
    fn an_unaugmented_batch_is_exactly_what_explain_feeds_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let gradient = image::RgbImage::from_fn(37, 29, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 9) as u8, ((x * y) % 251) as u8])
        });
        let png = dir.path().join("gradient.png");
        let jpeg = dir.path().join("gradient.jpg");
        gradient.save(&png).unwrap();
        gradient.save(&jpeg).unwrap();
        let samples: Vec<Sample> = [&png, &jpeg]
            .into_iter()
            .map(|path| Sample {
                image: ImageRef::File(path.clone()),
                label: 0,
            })
            .collect();
        for (color, normalization) in [
            (ColorMode::Rgb, Normalization::Unit),
            (ColorMode::Grayscale, Normalization::Imagenet),
        ] {
            let mut pre = Preprocessing::unit_range([32, 24]).normalized(normalization);
            pre.color = color;
            let (cache, report) = ImageCache::build(&samples, &pre, &|| ());
            assert!(report.bad.is_empty(), "{:?}", report.bad);
            let batch = cache.batch(&[0, 1], |_| Transform::identity(), &pre);
            let explained: Vec<f32> = [&png, &jpeg]
                .into_iter()
                .flat_map(|path| {
                    let decoded = decode_file_with(path, &pre.scan_options()).unwrap();
                    pre.to_chw(&decoded.image).unwrap()
                })
                .collect();
            assert_eq!(batch, explained, "{color:?} {normalization:?}");
            // Resizing 37×29 to 32×24 gives values between the integers: none was rounded.
            assert!(cache.image(0).iter().any(|v| v.fract() != 0.0));
        }
    }
}
