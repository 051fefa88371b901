//! Heatmaps to colours, and colours over images.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, image::RgbaImage};

/// A map from `[0, 1]` to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Colormap {
    /// Matplotlib's `jet` (blue → cyan → yellow → red), what the paper's figures use.
    Jet,
    /// Matplotlib's `viridis`: perceptually uniform and readable with colour-vision deficiency
    /// (the default).
    #[default]
    Viridis,
}

impl std::str::FromStr for Colormap {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        super::parse_name(text)
    }
}

impl std::fmt::Display for Colormap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::option_name(self))
    }
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
}

/// The colour of a signed value `v ∈ [−1, 1]` on ColorBrewer's red–blue diverging scale: red
/// for evidence for the class, blue against it, near white at zero.
pub fn diverging_rgb(v: f32) -> [u8; 3] {
    let v = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
    let c = colorous::RED_BLUE.eval_continuous(((1.0 - v) / 2.0) as f64);
    [c.r, c.g, c.b]
}

/// `layer` laid over `image` by its alpha channel — `α · layer + (1 − α) · image` per pixel —
/// as an opaque image. Both must have the same size.
pub fn composite(image: &RgbaImage, layer: &RgbaImage) -> Result<RgbaImage> {
    if (image.width(), image.height()) != (layer.width(), layer.height()) {
        return Err(Error::InvalidRequest(format!(
            "cannot lay a {}×{} layer over a {}×{} image; render it at the image's size",
            layer.width(),
            layer.height(),
            image.width(),
            image.height()
        )));
    }
    let pixels = image
        .pixels()
        .chunks_exact(4)
        .zip(layer.pixels().chunks_exact(4))
        .flat_map(|(px, top)| {
            let alpha = top[3] as f32 / 255.0;
            let blend =
                |c: usize| (alpha * top[c] as f32 + (1.0 - alpha) * px[c] as f32).round() as u8;
            [blend(0), blend(1), blend(2), 255]
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
    fn composite_blends_by_the_layer_alpha_and_checks_sizes() {
        let image = RgbaImage::new(2, 1, vec![100, 100, 100, 255, 10, 20, 30, 255]).unwrap();
        // a 40 % opaque dark red over the first pixel, a transparent one over the second
        let layer = RgbaImage::new(2, 1, vec![128, 0, 0, 102, 255, 255, 255, 0]).unwrap();
        let out = composite(&image, &layer).unwrap();
        // 0.4·128 + 0.6·100 = 111.2; 0.6·100 = 60
        assert_eq!(out.pixels(), &[111, 60, 60, 255, 10, 20, 30, 255]);
        let wrong = RgbaImage::new(1, 1, vec![0; 4]).unwrap();
        assert!(composite(&image, &wrong).is_err());
    }

    #[test]
    fn diverging_scale_is_red_for_and_blue_against() {
        // ColorBrewer RdBu's ends: (103, 0, 31) and (5, 48, 97)
        assert_eq!(diverging_rgb(1.0), [103, 0, 31], "positive is dark red");
        assert_eq!(
            diverging_rgb(-1.0),
            [4, 47, 96],
            "negative is dark blue (colorous rounds down)"
        );
        let [r, g, b] = diverging_rgb(0.0);
        assert!(r > 230 && g > 230 && b > 230, "zero is near white");
        assert_eq!("jet".parse::<Colormap>().unwrap(), Colormap::Jet);
        assert_eq!(Colormap::default(), Colormap::Viridis);
    }
}
