//! SHAP's background set carried in the bundle, so that the page and `kdlens explain` explain
//! against the same images: a few training images (e.g. 16–32, stratified over the classes) at
//! the model's input size, 8 bits per value, gray models' as one channel, base64 in the manifest.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    Error, Result,
    image::{ColorMode, Preprocessing, RgbaImage},
};

/// Most images a bundle's background may hold.
pub const MAX_BACKGROUND_IMAGES: usize = 64;
/// Most pixel bytes it may hold (base64 makes them a third larger in the manifest, whose limit is
/// 4 MiB).
pub const MAX_BACKGROUND_BYTES: usize = 5 << 19;

/// Background images at the model's input size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapBackground {
    /// `[height, width]` of every image: the model's input size.
    pub size: [usize; 2],
    /// Values per pixel: 1 (gray, shown to the model on all three channels) or 3 (RGB).
    pub channels: usize,
    /// Each image's class index, in order (the stratification, for the record).
    pub classes: Vec<usize>,
    /// `images × height × width × channels` values, row-major; base64 in JSON.
    #[serde(serialize_with = "to_base64", deserialize_with = "from_base64")]
    pub pixels: Vec<u8>,
}

fn to_base64<S: Serializer>(bytes: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(bytes))
}

fn from_base64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    STANDARD
        .decode(text)
        .map_err(|e| serde::de::Error::custom(format!("background pixels are not base64: {e}")))
}

impl ShapBackground {
    /// The set of `images` (each with its class index), resized to the model's input size with
    /// the model input's bilinear filter and rounded to 8 bits; stored as gray values when
    /// `preprocessing` feeds the model luma.
    pub fn new(images: &[(RgbaImage, usize)], preprocessing: &Preprocessing) -> Result<Self> {
        let size = preprocessing.input_size;
        let channels = stored_channels(preprocessing);
        let mut pixels = Vec::with_capacity(images.len() * size[0] * size[1] * channels);
        for (image, _) in images {
            let resized = image.resized(size)?;
            for rgba in resized.pixels().chunks_exact(4) {
                if channels == 1 {
                    let luma =
                        0.299 * rgba[0] as f32 + 0.587 * rgba[1] as f32 + 0.114 * rgba[2] as f32;
                    pixels.push(luma.round().clamp(0.0, 255.0) as u8);
                } else {
                    pixels.extend_from_slice(&rgba[..3]);
                }
            }
        }
        let background = Self {
            size,
            channels,
            classes: images.iter().map(|(_, class)| *class).collect(),
            pixels,
        };
        background.validate(size, usize::MAX)?;
        Ok(background)
    }

    /// The most images a set for a model with `preprocessing` may hold: [`MAX_BACKGROUND_IMAGES`],
    /// or fewer where their pixels would pass [`MAX_BACKGROUND_BYTES`] (e.g. 16 RGB images at
    /// 224²).
    pub fn capacity(preprocessing: &Preprocessing) -> usize {
        let [h, w] = preprocessing.input_size;
        let per_image = (h * w * stored_channels(preprocessing)).max(1);
        (MAX_BACKGROUND_BYTES / per_image).min(MAX_BACKGROUND_IMAGES)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether the set is empty (a valid set never is).
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The images as RGBA at the input size (gray values replicated, opaque).
    pub fn images(&self) -> Result<Vec<RgbaImage>> {
        let [h, w] = self.size;
        self.pixels
            .chunks_exact(h * w * self.channels)
            .map(|image| {
                let rgba = image
                    .chunks_exact(self.channels)
                    .flat_map(|p| match *p {
                        [v] => [v, v, v, 255],
                        [r, g, b] => [r, g, b, 255],
                        _ => unreachable!("channels are validated to be 1 or 3"),
                    })
                    .collect();
                RgbaImage::new(w, h, rgba)
            })
            .collect()
    }

    /// Checks the set against a model with input `input_size` and `num_classes` classes.
    pub fn validate(&self, input_size: [usize; 2], num_classes: usize) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidBundle(format!("SHAP background: {why}")));
        if self.size != input_size {
            return bad(format!(
                "images are {:?} but the model takes {input_size:?}",
                self.size
            ));
        }
        if self.channels != 1 && self.channels != 3 {
            return bad(format!(
                "{} values per pixel (1 or 3 expected)",
                self.channels
            ));
        }
        if self.is_empty() || self.len() > MAX_BACKGROUND_IMAGES {
            return bad(format!(
                "{} images (1 to {MAX_BACKGROUND_IMAGES} expected)",
                self.len()
            ));
        }
        if self.pixels.len() > MAX_BACKGROUND_BYTES {
            return bad(format!(
                "{} bytes of pixels, more than {MAX_BACKGROUND_BYTES}: use fewer images",
                self.pixels.len()
            ));
        }
        let expected = self.len() * input_size[0] * input_size[1] * self.channels;
        if self.pixels.len() != expected {
            return bad(format!(
                "{} bytes of pixels for {} images of {:?}×{} ({expected} expected)",
                self.pixels.len(),
                self.len(),
                input_size,
                self.channels
            ));
        }
        if let Some(&class) = self.classes.iter().find(|&&c| c >= num_classes) {
            return bad(format!("class {class} of a {num_classes}-class model"));
        }
        Ok(())
    }
}

/// Values stored per pixel: 1 when the model sees luma, else 3.
fn stored_channels(preprocessing: &Preprocessing) -> usize {
    match preprocessing.color {
        ColorMode::Grayscale => 1,
        ColorMode::Rgb => 3,
    }
}

/// The background when a bundle carries none: a black and a mid-gray image.
pub fn default_background_images() -> Vec<RgbaImage> {
    [0u8, 128]
        .iter()
        .map(|&v| RgbaImage::new(8, 8, [v, v, v, 255].repeat(64)).expect("8×8 RGBA"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Normalization;

    fn gradient(w: usize, h: usize, tint: u8) -> RgbaImage {
        let pixels = (0..w * h)
            .flat_map(|i| [(i * 7 % 256) as u8, tint, (i % 256) as u8, 255])
            .collect();
        RgbaImage::new(w, h, pixels).unwrap()
    }

    #[test]
    fn rgb_images_round_trip_through_json_at_the_input_size() {
        let preprocessing = Preprocessing::unit_range([6, 5]).normalized(Normalization::Imagenet);
        let images = [(gradient(10, 12, 40), 2), (gradient(5, 6, 200), 0)];
        let background = ShapBackground::new(&images, &preprocessing).unwrap();
        assert_eq!((background.len(), background.channels), (2, 3));
        let json = serde_json::to_string(&background).unwrap();
        assert!(json.contains("\"pixels\":\""), "base64 text: {json}");
        let back: ShapBackground = serde_json::from_str(&json).unwrap();
        assert_eq!(back, background);
        let restored = back.images().unwrap();
        // An image already at the input size is stored exactly; a larger one as `resized` makes it.
        assert_eq!(restored[1], images[1].0);
        assert_eq!(restored[0], images[0].0.resized([6, 5]).unwrap());
        back.validate([6, 5], 3).unwrap();
        assert!(
            back.validate([6, 5], 2).is_err(),
            "class 2 of a 2-class model"
        );
        assert!(back.validate([5, 6], 3).is_err(), "wrong size");
    }

    #[test]
    fn gray_models_store_one_luma_value_per_pixel() {
        let mut preprocessing = Preprocessing::unit_range([2, 2]);
        preprocessing.color = ColorMode::Grayscale;
        let image = RgbaImage::new(
            2,
            2,
            [
                [255, 0, 0, 255],
                [0, 255, 0, 255],
                [0, 0, 255, 255],
                [10, 10, 10, 255],
            ]
            .concat(),
        )
        .unwrap();
        let background = ShapBackground::new(&[(image, 1)], &preprocessing).unwrap();
        // 0.299 · 255 = 76.2, 0.587 · 255 = 149.7, 0.114 · 255 = 29.1, 10.
        assert_eq!(background.pixels, vec![76, 150, 29, 10]);
        let restored = &background.images().unwrap()[0];
        assert_eq!(
            &restored.pixels()[..8],
            &[76, 76, 76, 255, 150, 150, 150, 255]
        );
    }

    #[test]
    fn capacity_keeps_a_set_within_the_manifest_limit() {
        let rgb = Preprocessing::unit_range([224, 224]);
        assert_eq!(
            ShapBackground::capacity(&rgb),
            MAX_BACKGROUND_BYTES / (224 * 224 * 3)
        );
        assert_eq!(ShapBackground::capacity(&rgb), 17);
        let mut gray = Preprocessing::unit_range([32, 32]);
        gray.color = ColorMode::Grayscale;
        assert_eq!(ShapBackground::capacity(&gray), MAX_BACKGROUND_IMAGES);
    }

    #[test]
    fn damaged_sets_are_refused_with_the_reason() {
        let preprocessing = Preprocessing::unit_range([4, 4]);
        let mut background =
            ShapBackground::new(&[(gradient(4, 4, 0), 0)], &preprocessing).unwrap();
        background.pixels.pop();
        let err = background.validate([4, 4], 1).unwrap_err().to_string();
        assert!(err.contains("bytes of pixels"), "{err}");
        let text = r#"{"size":[4,4],"channels":3,"classes":[0],"pixels":"not base64!"}"#;
        let err = serde_json::from_str::<ShapBackground>(text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("base64"), "{err}");
    }
}
