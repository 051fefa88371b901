//! RGBA pixels → normalised model input.

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::{resize_plane, scan::ScanOptions};
use crate::{Error, Result};

/// Largest accepted side of an image, in pixels (decoders enforce their own, lower, limits).
pub const MAX_SIDE: usize = 16_384;

/// An 8-bit RGBA image, row-major, 4 bytes per pixel (what a browser canvas and the `image`
/// crate's `to_rgba8` produce).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbaImage {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl RgbaImage {
    /// Wraps a pixel buffer, checking that it holds exactly `width · height · 4` bytes and that
    /// both sides are between 1 and [`MAX_SIDE`].
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::InvalidImage(format!(
                "image has no pixels ({width}×{height})"
            )));
        }
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(Error::InvalidImage(format!(
                "image is {width}×{height} pixels; the largest accepted side is {MAX_SIDE}"
            )));
        }
        let expected = width * height * 4;
        if pixels.len() != expected {
            return Err(Error::InvalidImage(format!(
                "a {width}×{height} RGBA image needs {expected} bytes, got {}",
                pixels.len()
            )));
        }
        Ok(Self {
            width,
            height,
            pixels,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The RGBA bytes, row-major.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Consumes the image, returning its RGBA bytes.
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }

    /// The image resized to `[height, width]` with the same bilinear filter as the model input
    /// (used to show overlays at the model's resolution).
    pub fn resized(&self, size: [usize; 2]) -> Result<RgbaImage> {
        let planes: Vec<Vec<f32>> = (0..4)
            .map(|c| {
                let plane: Vec<f32> = self
                    .pixels
                    .iter()
                    .skip(c)
                    .step_by(4)
                    .map(|&v| v as f32)
                    .collect();
                resize_plane(&plane, [self.height, self.width], size)
            })
            .collect();
        let mut pixels = Vec::with_capacity(size[0] * size[1] * 4);
        for i in 0..size[0] * size[1] {
            for plane in &planes {
                pixels.push(plane[i].round().clamp(0.0, 255.0) as u8);
            }
        }
        RgbaImage::new(size[1], size[0], pixels)
    }
}

/// How colour is fed to the model (the model always takes 3 channels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ColorMode {
    /// Red, green and blue as they are.
    #[default]
    Rgb,
    /// Luma (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B, as Pillow's `L`) replicated to the three
    /// channels, for models trained on grayscale scans.
    Grayscale,
}

/// How pixel values scaled to `[0, 1]` are shifted and scaled per channel before the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// None: the `[0, 1]` values as they are (the paper's preprocessing).
    #[default]
    Unit,
    /// ImageNet's channel statistics, as torchvision's ImageNet models expect:
    /// mean (0.485, 0.456, 0.406), standard deviation (0.229, 0.224, 0.225).
    Imagenet,
}

impl Normalization {
    /// `(mean, std)` per RGB channel, of values in `[0, 1]`.
    pub fn mean_std(self) -> ([f32; 3], [f32; 3]) {
        match self {
            Self::Unit => ([0.0; 3], [1.0; 3]),
            Self::Imagenet => ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        }
    }

    /// The normalisation whose statistics are exactly `mean` and `std`, if any.
    pub fn from_mean_std(mean: [f32; 3], std: [f32; 3]) -> Option<Self> {
        [Self::Unit, Self::Imagenet]
            .into_iter()
            .find(|n| n.mean_std() == (mean, std))
    }
}

/// The preprocessing a model was trained with; stored in its bundle so every consumer repeats it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Model input `[height, width]`.
    pub input_size: [usize; 2],
    /// Colour handling.
    pub color: ColorMode,
    /// Per-channel mean subtracted after scaling to `[0, 1]`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by after subtracting the mean (all positive).
    pub std: [f32; 3],
    /// How DICOM and NIfTI scans were turned into images in training (window, frame, plane,
    /// slice), applied by default wherever the model meets a scan; absent in bundles made before
    /// kdlens read scans, and then the defaults apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanOptions>,
}

impl Preprocessing {
    /// Scaling by 1/255 only (the paper's preprocessing), RGB.
    pub fn unit_range(input_size: [usize; 2]) -> Self {
        Self {
            input_size,
            color: ColorMode::Rgb,
            mean: [0.0; 3],
            std: [1.0; 3],
            scan: None,
        }
    }

    /// The same with `normalization`'s mean and standard deviation.
    pub fn normalized(self, normalization: Normalization) -> Self {
        let (mean, std) = normalization.mean_std();
        Self { mean, std, ..self }
    }

    /// The scan options to decode with: the recorded ones, else the defaults.
    pub fn scan_options(&self) -> ScanOptions {
        self.scan.unwrap_or_default()
    }

    /// Checks that the sizes are positive and the standard deviations positive and finite.
    pub fn validate(&self) -> Result<()> {
        if self.input_size.contains(&0) {
            return Err(Error::InvalidConfig("input size must be positive".into()));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || self.mean.iter().any(|m| !m.is_finite())
        {
            return Err(Error::InvalidConfig(format!(
                "normalisation must be finite with positive std, got mean {:?} std {:?}",
                self.mean, self.std
            )));
        }
        Ok(())
    }

    /// The image colour-converted and resized to the model input, as `[3, height, width]`
    /// values still in the 0–255 range (the first half of [`to_chw`](Self::to_chw); training
    /// caches this and augments it before [`normalize`](Self::normalize)).
    ///
    /// Alpha is composited over black (`rgb · a / 255`), so transparent regions read as
    /// background in a scan.
    pub fn resize(&self, image: &RgbaImage) -> Result<Vec<f32>> {
        self.validate()?;
        let n = image.width * image.height;
        let mut planes = [vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]];
        for (i, px) in image.pixels.chunks_exact(4).enumerate() {
            let alpha = px[3] as f32 / 255.0;
            let [r, g, b] = [
                px[0] as f32 * alpha,
                px[1] as f32 * alpha,
                px[2] as f32 * alpha,
            ];
            match self.color {
                ColorMode::Rgb => {
                    planes[0][i] = r;
                    planes[1][i] = g;
                    planes[2][i] = b;
                }
                ColorMode::Grayscale => {
                    let luma = 0.299 * r + 0.587 * g + 0.114 * b;
                    planes.iter_mut().for_each(|p| p[i] = luma);
                }
            }
        }
        let [h, w] = self.input_size;
        let mut chw = Vec::with_capacity(3 * h * w);
        for plane in &planes {
            chw.extend(resize_plane(
                plane,
                [image.height, image.width],
                self.input_size,
            ));
        }
        Ok(chw)
    }

    /// Maps `[3, height, width]` values in the 0–255 range to the model's input scale in place:
    /// `(v / 255 − mean[c]) / std[c]`.
    pub fn normalize(&self, chw: &mut [f32]) {
        let plane = chw.len() / 3;
        for (c, values) in chw.chunks_mut(plane.max(1)).enumerate().take(3) {
            let (mean, std) = (self.mean[c], self.std[c]);
            values
                .iter_mut()
                .for_each(|v| *v = (*v / 255.0 - mean) / std);
        }
    }

    /// The normalised model input as `[3, height, width]` values, row-major per channel:
    /// [`resize`](Self::resize) then [`normalize`](Self::normalize).
    pub fn to_chw(&self, image: &RgbaImage) -> Result<Vec<f32>> {
        let mut chw = self.resize(image)?;
        self.normalize(&mut chw);
        Ok(chw)
    }

    /// The model input `[1, 3, height, width]` on `device`.
    pub fn to_tensor(&self, image: &RgbaImage, device: &Device) -> Result<Tensor<4>> {
        self.to_batch(std::slice::from_ref(image), device)
    }

    /// The model input `[images, 3, height, width]` on `device`, one image after another.
    pub fn to_batch(&self, images: &[RgbaImage], device: &Device) -> Result<Tensor<4>> {
        let mut values = Vec::new();
        for image in images {
            values.extend(self.to_chw(image)?);
        }
        let [h, w] = self.input_size;
        Ok(Tensor::from_data(
            TensorData::new(values, [images.len(), 3, h, w]),
            device,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(width: usize, height: usize, rgba: [u8; 4]) -> RgbaImage {
        RgbaImage::new(width, height, rgba.repeat(width * height)).unwrap()
    }

    #[test]
    fn buffer_of_the_wrong_length_is_rejected_with_sizes_named() {
        let err = RgbaImage::new(3, 2, vec![0; 23]).unwrap_err().to_string();
        assert!(
            err.contains("3×2") && err.contains("24") && err.contains("23"),
            "{err}"
        );
    }

    #[test]
    fn empty_and_huge_images_are_rejected() {
        assert!(RgbaImage::new(0, 5, vec![]).is_err());
        assert!(RgbaImage::new(MAX_SIDE + 1, 1, vec![0; (MAX_SIDE + 1) * 4]).is_err());
    }

    #[test]
    fn solid_colour_scales_to_unit_range_and_normalises() {
        let pre = Preprocessing {
            input_size: [4, 6],
            color: ColorMode::Rgb,
            mean: [0.5, 0.0, 0.0],
            std: [0.5, 1.0, 2.0],
            scan: None,
        };
        let chw = pre.to_chw(&solid(9, 5, [255, 51, 102, 255])).unwrap();
        assert_eq!(chw.len(), 3 * 4 * 6);
        let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
        assert!(chw[..24].iter().all(|&v| close(v, 1.0)));
        assert!(chw[24..48].iter().all(|&v| close(v, 0.2)));
        assert!(chw[48..].iter().all(|&v| close(v, 0.2)));
    }

    #[test]
    fn imagenet_normalisation_uses_torchvisions_statistics() {
        let pre = Preprocessing::unit_range([1, 1]).normalized(Normalization::Imagenet);
        // (255/255 − 0.485)/0.229, (0/255 − 0.456)/0.224, (102/255 − 0.406)/0.225 by hand.
        let chw = pre.to_chw(&solid(1, 1, [255, 0, 102, 255])).unwrap();
        let want = [2.248_908_3, -2.035_714_3, -0.026_666_67];
        for (got, want) in chw.iter().zip(want) {
            assert!((got - want).abs() < 1e-5, "{chw:?}");
        }
        assert_eq!(
            Normalization::from_mean_std(pre.mean, pre.std),
            Some(Normalization::Imagenet)
        );
        assert_eq!(
            Normalization::from_mean_std([0.0; 3], [1.0; 3]),
            Some(Normalization::Unit)
        );
        assert_eq!(Normalization::from_mean_std([0.5; 3], [0.5; 3]), None);
    }

    #[test]
    fn grayscale_uses_bt601_luma_in_every_channel() {
        let mut pre = Preprocessing::unit_range([2, 2]);
        pre.color = ColorMode::Grayscale;
        let chw = pre.to_chw(&solid(2, 2, [255, 0, 0, 255])).unwrap();
        assert!(chw.iter().all(|&v| (v - 0.299).abs() < 1e-6), "{chw:?}");
    }

    #[test]
    fn transparent_pixels_read_as_black() {
        let chw = Preprocessing::unit_range([1, 1])
            .to_chw(&solid(1, 1, [200, 200, 200, 0]))
            .unwrap();
        assert_eq!(chw, vec![0.0; 3]);
    }

    #[test]
    fn zero_std_is_a_configuration_error() {
        let mut pre = Preprocessing::unit_range([2, 2]);
        pre.std = [1.0, 0.0, 1.0];
        assert!(pre.to_chw(&solid(2, 2, [0, 0, 0, 255])).is_err());
    }
}
