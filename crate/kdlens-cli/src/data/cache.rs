//! Decoded, resized images kept in memory for the whole run.

use kdlens::image::{ColorMode, Preprocessing};
use rayon::prelude::*;

use super::{Sample, augment::Transform};

/// Images decoded and resized to the model input once, stored as `[channels, height, width]`
/// planes of `f32` values in the 0–255 range (colour already converted; one plane for a
/// grayscale model, whose three input channels are equal), so epochs only augment and normalise.
/// The values are exactly what [`Preprocessing::resize`] returns, unrounded, so an unaugmented
/// batch is bit for bit the input `kdlens explain` and the page give the model. 4 bytes per
/// pixel and plane: 0.8 GB for 50,000 grayscale images at 64², 2 GB for 10,000 at 224² (6 GB in
/// colour).
pub struct ImageCache {
    size: [usize; 2],
    channels: usize,
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
        let [h, w] = preprocessing.input_size;
        let channels = match preprocessing.color {
            ColorMode::Grayscale => 1,
            ColorMode::Rgb => 3,
        };
        let per_image = channels * h * w;
        // Each image is written into its slot; unusable ones are squeezed out afterwards, so the
        // cache never needs twice its memory.
        let mut pixels = vec![0.0f32; samples.len() * per_image];
        let results: Vec<Result<(), String>> = pixels
            .par_chunks_mut(per_image.max(1))
            .zip(samples.par_iter())
            .map(|(slot, sample)| {
                let result = sample
                    .image
                    .load(&scan)
                    .and_then(|image| preprocessing.resize(&image).map_err(|e| e.to_string()))
                    .map(|chw| slot.copy_from_slice(&chw[..per_image]));
                on_progress();
                result
            })
            .collect();
        let mut cache = Self {
            size: [h, w],
            channels,
            pixels: Vec::new(),
            labels: Vec::with_capacity(samples.len()),
            names: Vec::with_capacity(samples.len()),
        };
        let mut report = LoadReport::default();
        for (i, (sample, result)) in samples.iter().zip(results).enumerate() {
            match result {
                Ok(()) => {
                    let kept = cache.labels.len();
                    pixels.copy_within(i * per_image..(i + 1) * per_image, kept * per_image);
                    cache.labels.push(sample.label);
                    cache.names.push(sample.image.describe());
                }
                Err(reason) => report.bad.push((sample.image.describe(), reason)),
            }
        }
        pixels.truncate(cache.labels.len() * per_image);
        cache.pixels = pixels;
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

    /// Image `i` as `[channels, height, width]` values in the 0–255 range (one plane for a
    /// grayscale model).
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.channels * self.size[0] * self.size[1];
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
                let planes = transform(position).apply(self.image(i), self.size);
                for (c, channel) in slot.chunks_mut(n / 3).enumerate() {
                    let plane = if self.channels == 1 { 0 } else { c };
                    channel.copy_from_slice(&planes[plane * n / 3..(plane + 1) * n / 3]);
                }
                preprocessing.normalize(slot);
            });
        out
    }
}

#[cfg(test)]
mod tests {
    use kdlens::image::{Normalization, decode_file_with};

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
