//! Gaussian blur of image planes: the blurred baseline of integrated gradients and the starting
//! image of the insertion curve.

/// Separable Gaussian blur of `[channels, height, width]` planes (row-major per channel), first
/// along the width, then along the height.
///
/// The kernel has taps at integer offsets `−r..=r` with `r = ⌈3σ⌉` and weights
/// `exp(−d² / 2σ²)` normalised to sum 1; borders replicate the edge pixel. A `sigma` that is not
/// positive (or not finite) returns the planes unchanged.
pub fn gaussian_blur(chw: &[f32], size: [usize; 2], sigma: f32) -> Vec<f32> {
    let [h, w] = size;
    let plane = h * w;
    if !(sigma > 0.0 && sigma.is_finite()) || plane == 0 {
        return chw.to_vec();
    }
    let kernel = gaussian_kernel(sigma);
    let r = (kernel.len() / 2) as isize;
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut out = vec![0.0f32; chw.len()];
    let mut rows = vec![0.0f32; plane];
    for (src, dst) in chw.chunks_exact(plane).zip(out.chunks_exact_mut(plane)) {
        for y in 0..h {
            for x in 0..w {
                rows[y * w + x] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, weight)| weight * src[y * w + clamp(x as isize + k as isize - r, w)])
                    .sum();
            }
        }
        for y in 0..h {
            for x in 0..w {
                dst[y * w + x] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, weight)| weight * rows[clamp(y as isize + k as isize - r, h) * w + x])
                    .sum();
            }
        }
    }
    out
}

/// The normalised taps of a Gaussian of standard deviation `sigma` (pixels), `2⌈3σ⌉ + 1` long.
fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil() as isize;
    let taps: Vec<f32> = (-r..=r)
        .map(|d| (-((d * d) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = taps.iter().sum();
    taps.into_iter().map(|t| t / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_symmetric_sums_to_one_and_spans_three_sigma() {
        let k = gaussian_kernel(1.0);
        assert_eq!(k.len(), 7);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(k[0], k[6]);
        // exp(−1/2) relative to the centre
        assert!((k[4] / k[3] - (-0.5f32).exp()).abs() < 1e-6);
    }

    #[test]
    fn constant_planes_stay_constant_and_an_impulse_spreads_symmetrically() {
        let flat = gaussian_blur(&[2.0; 2 * 5 * 4], [5, 4], 1.3);
        assert!(flat.iter().all(|v| (v - 2.0).abs() < 1e-5));
        let mut impulse = vec![0.0; 9 * 9];
        impulse[4 * 9 + 4] = 1.0;
        let out = gaussian_blur(&impulse, [9, 9], 0.8);
        assert!(
            (out.iter().sum::<f32>() - 1.0).abs() < 1e-5,
            "mass kept away from borders"
        );
        assert_eq!(out[4 * 9 + 3], out[4 * 9 + 5]);
        assert_eq!(out[3 * 9 + 4], out[4 * 9 + 3]);
        assert!(out[4 * 9 + 4] < 1.0);
    }

    #[test]
    fn non_positive_sigma_is_the_identity() {
        let x = vec![1.0, 5.0, 3.0, 2.0];
        assert_eq!(gaussian_blur(&x, [2, 2], 0.0), x);
    }
}
