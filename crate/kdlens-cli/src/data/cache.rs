//! Decoded, resized images kept in memory for the whole run.

use kdlens::image::Preprocessing;
use rayon::prelude::*;

use super::{Sample, augment::Transform};

/// Images decoded and resized to the model input once, stored as 8-bit `[3, height, width]`
/// planes (colour already converted), so epochs only augment and normalise.
pub struct ImageCache {
    size: [usize; 2],
    pixels: Vec<u8>,
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
        let results: Vec<Result<Vec<u8>, String>> = samples
            .par_iter()
            .map(|sample| {
                let result = sample
                    .image
                    .load(&scan)
                    .and_then(|image| preprocessing.resize(&image).map_err(|e| e.to_string()))
                    .map(|chw| {
                        chw.into_iter()
                            .map(|v| v.round().clamp(0.0, 255.0) as u8)
                            .collect()
                    });
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

    /// Image `i` as `[3, height, width]` bytes.
    pub fn image(&self, i: usize) -> &[u8] {
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
                let image: Vec<f32> = self.image(i).iter().map(|&v| v as f32).collect();
                let mut image = transform(position).apply(&image, self.size);
                preprocessing.normalize(&mut image);
                slot.copy_from_slice(&image);
            });
        out
    }
}
