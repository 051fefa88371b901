//! Training-time augmentation: flips, shift, zoom and rotation, each optional and seeded — the
//! transformations of the authors' `ImageDataGenerator`, with constant (black) fill.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

/// Which transformations to draw, and how strong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augmentation {
    /// Mirror left–right with probability ½.
    pub horizontal_flip: bool,
    /// Mirror top–bottom with probability ½.
    pub vertical_flip: bool,
    /// Largest shift as a fraction of the side (uniform in ±shift); 0 disables.
    pub shift: f32,
    /// Largest zoom change (scale uniform in 1 ± zoom); 0 disables.
    pub zoom: f32,
    /// Largest rotation in degrees (uniform in ±rotation); 0 disables.
    pub rotation_degrees: f32,
}

impl Default for Augmentation {
    /// The authors' settings: both flips, ±5 % shift, zoom 0.8–1.2, ±0.2° rotation.
    fn default() -> Self {
        Self {
            horizontal_flip: true,
            vertical_flip: true,
            shift: 0.05,
            zoom: 0.2,
            rotation_degrees: 0.2,
        }
    }
}

impl Augmentation {
    /// No transformation at all.
    pub fn none() -> Self {
        Self {
            horizontal_flip: false,
            vertical_flip: false,
            shift: 0.0,
            zoom: 0.0,
            rotation_degrees: 0.0,
        }
    }

    /// Whether any transformation is enabled.
    pub fn is_active(&self) -> bool {
        self.horizontal_flip
            || self.vertical_flip
            || self.shift > 0.0
            || self.zoom > 0.0
            || self.rotation_degrees > 0.0
    }

    /// Whether the only transformations are flips, so that every augmented image is one of at
    /// most four variants of the original (what lets a teacher's outputs be computed once).
    pub fn flips_only(&self) -> bool {
        self.shift == 0.0 && self.zoom == 0.0 && self.rotation_degrees == 0.0
    }

    /// Draws the transformation for `seed`.
    pub fn draw(&self, seed: u64) -> Transform {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut uniform = |range: f32| {
            if range > 0.0 {
                rng.random_range(-range..range)
            } else {
                0.0
            }
        };
        Transform {
            flip_x: self.horizontal_flip && uniform(1.0) < 0.0,
            flip_y: self.vertical_flip && uniform(1.0) < 0.0,
            shift: [uniform(self.shift), uniform(self.shift)],
            scale: 1.0 + uniform(self.zoom),
            angle_degrees: uniform(self.rotation_degrees),
        }
    }
}

/// One drawn transformation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    /// Mirror left–right.
    pub flip_x: bool,
    /// Mirror top–bottom.
    pub flip_y: bool,
    /// Shift `[x, y]` as fractions of the width and height.
    pub shift: [f32; 2],
    /// Zoom factor.
    pub scale: f32,
    /// Rotation in degrees.
    pub angle_degrees: f32,
}

impl Transform {
    /// The identity.
    pub fn identity() -> Self {
        Self {
            flip_x: false,
            flip_y: false,
            shift: [0.0; 2],
            scale: 1.0,
            angle_degrees: 0.0,
        }
    }

    /// Pure flips: variant `v` flips left–right when bit 0 is set and top–bottom when bit 1 is.
    pub fn flips(variant: usize) -> Self {
        Self {
            flip_x: variant & 1 == 1,
            flip_y: variant & 2 == 2,
            ..Self::identity()
        }
    }

    /// Which of the four flip variants this transformation's flips are (see [`Transform::flips`]).
    pub fn flip_variant(&self) -> usize {
        self.flip_x as usize + 2 * self.flip_y as usize
    }

    /// The transformed copy of a `[channels, h, w]` image (values in any range). Output pixel `p`
    /// samples the input bilinearly at `A⁻¹(p)`; outside the image is 0 (constant fill).
    pub fn apply(&self, chw: &[f32], size: [usize; 2]) -> Vec<f32> {
        if *self == Self::identity() {
            return chw.to_vec();
        }
        let [h, w] = size;
        let flip_x = if self.flip_x { -1.0 } else { 1.0 };
        let flip_y = if self.flip_y { -1.0 } else { 1.0 };
        let (dx, dy) = (self.shift[0] * w as f32, self.shift[1] * h as f32);
        let (sin, cos) = self.angle_degrees.to_radians().sin_cos();
        let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
        let plane = h * w;
        let mut out = vec![0.0f32; chw.len()];
        for y in 0..h {
            for x in 0..w {
                // inverse map: undo shift, rotation, zoom, then flips, around the centre
                let (u, v) = (x as f32 - cx - dx, y as f32 - cy - dy);
                let (u, v) = (cos * u + sin * v, -sin * u + cos * v);
                let (u, v) = (u / self.scale * flip_x + cx, v / self.scale * flip_y + cy);
                if u < -0.5 || v < -0.5 || u > w as f32 - 0.5 || v > h as f32 - 0.5 {
                    continue;
                }
                let (u, v) = (u.clamp(0.0, (w - 1) as f32), v.clamp(0.0, (h - 1) as f32));
                let (x0, y0) = (u.floor() as usize, v.floor() as usize);
                let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
                let (fx, fy) = (u - x0 as f32, v - y0 as f32);
                for c in 0..chw.len() / plane {
                    let p = &chw[c * plane..(c + 1) * plane];
                    let top = p[y0 * w + x0] * (1.0 - fx) + p[y0 * w + x1] * fx;
                    let bottom = p[y1 * w + x0] * (1.0 - fx) + p[y1 * w + x1] * fx;
                    out[c * plane + y * w + x] = top * (1.0 - fy) + bottom * fy;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize) -> Vec<f32> {
        (0..3 * h * w).map(|i| (i % (h * w)) as f32).collect()
    }

    #[test]
    fn no_augmentation_is_the_identity() {
        let image = ramp(5, 7);
        assert_eq!(Augmentation::none().draw(3).apply(&image, [5, 7]), image);
    }

    #[test]
    fn a_forced_horizontal_flip_mirrors_rows() {
        let aug = Augmentation {
            horizontal_flip: true,
            ..Augmentation::none()
        };
        let image = ramp(2, 3);
        // Seeds either flip or not; find one that flips and check it mirrors exactly.
        let flipped = (0..64)
            .map(|s| aug.draw(s).apply(&image, [2, 3]))
            .find(|out| out != &image)
            .expect("some seed flips");
        assert_eq!(&flipped[..6], &[2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
    }

    #[test]
    fn flip_variants_compose_and_are_reported() {
        let image = ramp(2, 3);
        let both = Transform::flips(3).apply(&image, [2, 3]);
        assert_eq!(&both[..6], &[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]);
        assert_eq!(Transform::flips(2).flip_variant(), 2);
        let aug = Augmentation {
            horizontal_flip: true,
            ..Augmentation::none()
        };
        assert!(aug.flips_only() && !Augmentation::default().flips_only());
        for seed in 0..16 {
            let t = aug.draw(seed);
            assert_eq!(
                t.apply(&image, [2, 3]),
                Transform::flips(t.flip_variant()).apply(&image, [2, 3])
            );
        }
    }

    #[test]
    fn same_seed_same_result_and_values_stay_in_range() {
        let aug = Augmentation::default();
        let image = ramp(16, 16);
        assert_eq!(
            aug.draw(9).apply(&image, [16, 16]),
            aug.draw(9).apply(&image, [16, 16])
        );
        let max = 255.0;
        assert!(
            aug.draw(10)
                .apply(&image, [16, 16])
                .iter()
                .all(|&v| (0.0..=max).contains(&v))
        );
    }
}
