//! Heatmaps to colours, and colours over images.

use serde::{Deserialize, Serialize};

use super::Heatmap;
use crate::{Error, Result, image::RgbaImage};

/// A map from `[0, 1]` to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Colormap {
    /// Matplotlib's `jet` (blue → cyan → yellow → red), what the paper's figures use.
    #[default]
    Jet,
    /// Matplotlib's `viridis`: perceptually uniform and readable with colour-vision deficiency.
    Viridis,
}

/// Piecewise-linear segments of matplotlib's `jet` (`_jet_data`): `(x, value)` per channel.
const JET: [&[(f32, f32)]; 3] = [
    &[
        (0.0, 0.0),
        (0.35, 0.0),
        (0.66, 1.0),
        (0.89, 1.0),
        (1.0, 0.5),
    ],
    &[
        (0.0, 0.0),
        (0.125, 0.0),
        (0.375, 1.0),
        (0.64, 1.0),
        (0.91, 0.0),
        (1.0, 0.0),
    ],
    &[
        (0.0, 0.5),
        (0.11, 1.0),
        (0.34, 1.0),
        (0.65, 0.0),
        (1.0, 0.0),
    ],
];

fn piecewise(segments: &[(f32, f32)], t: f32) -> f32 {
    for pair in segments.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if t <= x1 {
            return y0 + (y1 - y0) * (t - x0) / (x1 - x0);
        }
    }
    segments[segments.len() - 1].1
}

impl Colormap {
    /// The colour of `t` (clamped to `[0, 1]`; NaN reads as 0) as 8-bit RGB.
    pub fn rgb(self, t: f32) -> [u8; 3] {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        match self {
            Colormap::Jet => JET.map(|segments| (piecewise(segments, t) * 255.0).round() as u8),
            Colormap::Viridis => {
                let c = colorous::VIRIDIS.eval_continuous(t as f64);
                [c.r, c.g, c.b]
            }
        }
    }

    /// The map as opaque RGBA pixels (values expected in `[0, 1]`).
    pub fn colorize(self, map: &Heatmap) -> RgbaImage {
        let pixels = map
            .values
            .iter()
            .flat_map(|&v| {
                let [r, g, b] = self.rgb(v);
                [r, g, b, 255]
            })
            .collect();
        RgbaImage::new(map.size[1], map.size[0], pixels).expect("heatmap sizes are consistent")
    }
}

/// An overlay needs a map of the image's own size.
fn check_same_size(image: &RgbaImage, map: &Heatmap) -> Result<()> {
    if map.size != [image.height(), image.width()] {
        return Err(Error::InvalidRequest(format!(
            "overlay of a {}×{} map on a {}×{} image; resize the map first",
            map.size[1],
            map.size[0],
            image.width(),
            image.height()
        )));
    }
    Ok(())
}

/// `alpha · colour(map) + (1 − alpha) · image` per pixel, opaque. The map must have the image's
/// size (resize it first); `alpha` is clamped to `[0, 1]`.
pub fn overlay(
    image: &RgbaImage,
    map: &Heatmap,
    colormap: Colormap,
    alpha: f32,
) -> Result<RgbaImage> {
    check_same_size(image, map)?;
    let alpha = alpha.clamp(0.0, 1.0);
    let pixels = image
        .pixels()
        .chunks_exact(4)
        .zip(&map.values)
        .flat_map(|(px, &v)| {
            let heat = colormap.rgb(v);
            let blend =
                |c: usize| (alpha * heat[c] as f32 + (1.0 - alpha) * px[c] as f32).round() as u8;
            [blend(0), blend(1), blend(2), 255]
        })
        .collect();
    RgbaImage::new(image.width(), image.height(), pixels)
}

/// A signed map (SHAP attributions) over an image: positive values in red, negative in blue,
/// opacity growing with `|v| / max|v|` up to `alpha`; the image is shown in grayscale beneath so
/// the colours read unambiguously. The map must have the image's size.
pub fn signed_overlay(image: &RgbaImage, map: &Heatmap, alpha: f32) -> Result<RgbaImage> {
    check_same_size(image, map)?;
    let scale = map.values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let alpha = alpha.clamp(0.0, 1.0);
    let pixels = image
        .pixels()
        .chunks_exact(4)
        .zip(&map.values)
        .flat_map(|(px, &v)| {
            let gray = 0.299 * px[0] as f32 + 0.587 * px[1] as f32 + 0.114 * px[2] as f32;
            let strength = if scale > 0.0 {
                alpha * v.abs() / scale
            } else {
                0.0
            };
            let colour: [f32; 3] = if v >= 0.0 {
                [255.0, 13.0, 87.0]
            } else {
                [30.0, 136.0, 229.0]
            };
            let mix = |c: usize| (strength * colour[c] + (1.0 - strength) * gray).round() as u8;
            [mix(0), mix(1), mix(2), 255]
        })
        .collect();
    RgbaImage::new(image.width(), image.height(), pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_matches_matplotlib_at_its_knots() {
        // matplotlib.cm.jet(x)[:3] * 255 for x = 0, 0.5, 1 (continuous data, not the 256 LUT)
        assert_eq!(Colormap::Jet.rgb(0.0), [0, 0, 128]);
        assert_eq!(Colormap::Jet.rgb(1.0), [128, 0, 0]);
        // x = 0.5: r = (0.5 − 0.35)/0.31, g = 1, b = 1 − (0.5 − 0.34)/0.31
        let [r, g, b] = Colormap::Jet.rgb(0.5);
        assert_eq!(
            (r, g, b),
            (
                (0.15f32 / 0.31 * 255.0).round() as u8,
                255,
                ((1.0 - 0.16f32 / 0.31) * 255.0).round() as u8
            )
        );
    }

    #[test]
    fn viridis_runs_from_purple_to_yellow() {
        let [r0, g0, b0] = Colormap::Viridis.rgb(0.0);
        let [r1, g1, b1] = Colormap::Viridis.rgb(1.0);
        assert!(b0 > r0 && b0 > g0, "viridis starts dark purple");
        assert!(r1 > b1 && g1 > b1, "viridis ends yellow");
    }

    #[test]
    fn overlay_blends_with_alpha_and_checks_sizes() {
        let image = RgbaImage::new(1, 1, vec![100, 100, 100, 255]).unwrap();
        let map = Heatmap::new("l", [1, 1], vec![1.0]);
        let out = overlay(&image, &map, Colormap::Jet, 0.4).unwrap();
        // jet(1) = (128, 0, 0): 0.4·128 + 0.6·100 = 111.2; 0.6·100 = 60
        assert_eq!(out.pixels(), &[111, 60, 60, 255]);
        let wrong = Heatmap::new("l", [2, 1], vec![0.0, 1.0]);
        assert!(overlay(&image, &wrong, Colormap::Jet, 0.5).is_err());
    }

    #[test]
    fn signed_overlay_colours_by_sign_and_leaves_zero_gray() {
        let image = RgbaImage::new(3, 1, [100, 100, 100, 255].repeat(3)).unwrap();
        let map = Heatmap::new("shap", [1, 3], vec![2.0, 0.0, -1.0]);
        let out = signed_overlay(&image, &map, 1.0).unwrap();
        let px = out.pixels();
        assert_eq!(
            &px[0..4],
            &[255, 13, 87, 255],
            "largest positive is full red"
        );
        assert_eq!(
            &px[4..8],
            &[100, 100, 100, 255],
            "zero keeps the gray image"
        );
        assert!(px[10] > px[8], "negative leans blue");
    }
}
