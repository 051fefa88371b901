//! Integrated gradients (Sundararajan et al., 2017), as captum's `IntegratedGradients`:
//!
//! `φ(x) = (x − x') ⊙ Σ_k w_k ∂f_c/∂x (x' + α_k (x − x'))`
//!
//! with nodes `α_k` and weights `w_k` of a quadrature rule on `[0, 1]`, so that
//! `Σ φ ≈ f_c(x) − f_c(x')` (completeness).

use burn::tensor::{Tensor, TensorData};
use rand::{RngExt, SeedableRng, rngs::StdRng};

use super::{
    Attribution, Baseline, IntegratedGradientsPlan, Quadrature, feature_maps::check_single_image,
    request::integrated_gradients_plan_error, shap::class_input_gradient,
};
use crate::{
    Error, Result,
    image::{ColorMode, Preprocessing, gaussian_blur},
    model::LayeredClassifier,
    read_f32,
};

/// Nodes `α_k ∈ [0, 1]` and weights `w_k` of `rule` with `steps` points, in increasing `α` —
/// captum's `approximation_parameters`, quirks included: its trapezoid rule puts `steps` equally
/// spaced nodes on `[0, 1]` but weighs them `1/steps` (halved at both ends), so its weights sum
/// to `(steps − 1) / steps`.
pub fn quadrature(rule: Quadrature, steps: usize) -> Vec<(f64, f64)> {
    match rule {
        Quadrature::Trapezoid => {
            if steps < 2 {
                return vec![(1.0, 1.0)];
            }
            let weight = 1.0 / steps as f64;
            (0..steps)
                .map(|k| {
                    let end = k == 0 || k == steps - 1;
                    let alpha = k as f64 / (steps - 1) as f64;
                    (alpha, if end { weight / 2.0 } else { weight })
                })
                .collect()
        }
        Quadrature::GaussLegendre => gauss_legendre(steps)
            .into_iter()
            .map(|(x, w)| (0.5 * (1.0 + x), 0.5 * w))
            .collect(),
    }
}

/// Gauss–Legendre nodes on `[−1, 1]` and their weights (Newton's method on the Legendre
/// polynomial from the Chebyshev-like first guess), in increasing order.
fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut nodes: Vec<(f64, f64)> = (1..=n)
        .map(|i| {
            let mut x = (std::f64::consts::PI * (i as f64 - 0.25) / (n as f64 + 0.5)).cos();
            let mut derivative = 1.0;
            for _ in 0..100 {
                let (p, dp) = legendre(n, x);
                derivative = dp;
                let step = p / dp;
                x -= step;
                if step.abs() < 1e-15 {
                    break;
                }
            }
            (x, 2.0 / ((1.0 - x * x) * derivative * derivative))
        })
        .collect();
    nodes.sort_by(|a, b| a.0.total_cmp(&b.0));
    nodes
}

/// `P_n(x)` and `P_n'(x)` by the three-term recurrence.
fn legendre(n: usize, x: f64) -> (f64, f64) {
    let (mut previous, mut current) = (1.0, x);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let k = k as f64;
        let next = ((2.0 * k - 1.0) * x * current - (k - 1.0) * previous) / k;
        previous = current;
        current = next;
    }
    (current, n as f64 * (x * current - previous) / (x * x - 1.0))
}

/// The baseline `x'` for an input `[3, H, W]` (already normalised by `preprocessing`): a black
/// image, the input blurred by `plan.blur_sigma · max(H, W)` pixels, or seeded uniform noise
/// (one noise plane on all three channels for a grayscale model).
pub fn baseline(
    input: &[f32],
    size: [usize; 2],
    plan: &IntegratedGradientsPlan,
    preprocessing: &Preprocessing,
) -> Vec<f32> {
    let plane = size[0] * size[1];
    let normalised =
        |c: usize, pixel: f32| (pixel / 255.0 - preprocessing.mean[c]) / preprocessing.std[c];
    match plan.baseline {
        Baseline::Black => black_image(size, preprocessing),
        Baseline::Blur => gaussian_blur(input, size, plan.blur_sigma * size[0].max(size[1]) as f32),
        Baseline::Noise => {
            // A grayscale model sees three equal channels: its noise is one plane, repeated.
            let planes = match preprocessing.color {
                ColorMode::Rgb => 3,
                ColorMode::Grayscale => 1,
            };
            let mut rng = StdRng::seed_from_u64(plan.seed);
            let noise: Vec<f32> = (0..planes * plane)
                .map(|_| rng.random::<f32>() * 255.0)
                .collect();
            (0..3 * plane)
                .map(|i| {
                    let (channel, position) = (i / plane, i % plane);
                    normalised(channel, noise[(channel % planes) * plane + position])
                })
                .collect()
        }
    }
}

/// A black image `[3, H, W]` (pixel value 0) normalised by `preprocessing`: the black baseline,
/// and what the deletion curve replaces pixels with.
pub fn black_image(size: [usize; 2], preprocessing: &Preprocessing) -> Vec<f32> {
    let plane = size[0] * size[1];
    (0..3 * plane)
        .map(|i| {
            let channel = i / plane;
            // 0 − mean, not −mean: a zero mean gives +0.0 rather than −0.0.
            (0.0 - preprocessing.mean[channel]) / preprocessing.std[channel]
        })
        .collect()
}

/// Integrated gradients of one image `[1, 3, H, W]` from `baseline` `[1, 3, H, W]` for
/// `class` (logit output), with `plan.steps` points of `plan.quadrature`, `plan.batch_size`
/// points per forward/backward pass.
pub async fn integrated_gradients<M: LayeredClassifier>(
    model: &M,
    input: Tensor<4>,
    baseline: Tensor<4>,
    class: usize,
    plan: &IntegratedGradientsPlan,
) -> Result<Attribution> {
    check_single_image(&input)?;
    if input.dims() != baseline.dims() {
        return Err(Error::InvalidRequest(format!(
            "the baseline {:?} and the input {:?} differ in shape",
            baseline.dims(),
            input.dims()
        )));
    }
    if plan.steps < IntegratedGradientsPlan::MIN_STEPS || plan.batch_size == 0 {
        return Err(integrated_gradients_plan_error(plan));
    }
    super::Target::Class(class).validate(model.num_classes())?;
    let [_, _, h, w] = input.dims();
    let input = input.without_autodiff();
    let baseline = baseline.without_autodiff();
    let device = input.device();
    let ends =
        read_f32(model.forward(Tensor::cat(vec![input.clone(), baseline.clone()], 0))).await?;
    let num_classes = model.num_classes();
    let delta = input - baseline.clone();

    let nodes = quadrature(plan.quadrature, plan.steps);
    let mut sum: Option<Tensor<4>> = None;
    for chunk in nodes.chunks(plan.batch_size) {
        let n = chunk.len();
        let column = |f: fn(&(f64, f64)) -> f64| {
            let values: Vec<f32> = chunk.iter().map(|p| f(p) as f32).collect();
            Tensor::<4>::from_data(TensorData::new(values, [n, 1, 1, 1]), &device)
        };
        let (alphas, weights) = (column(|p| p.0), column(|p| p.1));
        let points =
            baseline.clone().expand([n, 3, h, w]) + delta.clone().expand([n, 3, h, w]) * alphas;
        let weighted = (class_input_gradient(model, points, class)? * weights).sum_dim(0);
        sum = Some(match sum {
            Some(s) => s + weighted,
            None => weighted,
        });
    }
    let total = sum.expect("at least one quadrature node") * delta;
    Ok(Attribution {
        class,
        values: read_f32(total).await?,
        size: [h, w],
        output: ends[class],
        expected_value: ends[num_classes + class],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_matches_numpy_leggauss_for_three_points() {
        // numpy.polynomial.legendre.leggauss(3): ±√(3/5), 0; weights 5/9, 8/9, 5/9
        let nodes = gauss_legendre(3);
        let r = (0.6f64).sqrt();
        let expected = [(-r, 5.0 / 9.0), (0.0, 8.0 / 9.0), (r, 5.0 / 9.0)];
        for ((x, w), (ex, ew)) in nodes.iter().zip(expected) {
            assert!((x - ex).abs() < 1e-14 && (w - ew).abs() < 1e-14, "{x} {w}");
        }
    }

    #[test]
    fn both_rules_integrate_polynomials_on_the_unit_interval() {
        // Gauss–Legendre with n points is exact for degree 2n − 1: ∫₀¹ t⁵ = 1/6 with 3 points.
        let gl: f64 = quadrature(Quadrature::GaussLegendre, 3)
            .iter()
            .map(|(a, w)| w * a.powi(5))
            .sum();
        assert!((gl - 1.0 / 6.0).abs() < 1e-14);
        // captum's trapezoid rule: nodes 0, ¼, ½, ¾, 1 weighed ⅕ (ends ⅒): weights sum to ⅘.
        let trap = quadrature(Quadrature::Trapezoid, 5);
        assert_eq!(trap[0], (0.0, 0.1));
        assert_eq!(trap[2], (0.5, 0.2));
        assert_eq!(trap[4], (1.0, 0.1));
        let total: f64 = trap.iter().map(|(_, w)| w).sum();
        assert!((total - 0.8).abs() < 1e-14);
    }

    #[test]
    fn black_baseline_is_a_normalised_black_image() {
        let pre = Preprocessing {
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 2.0],
            ..Preprocessing::unit_range([1, 2])
        };
        let b = baseline(&[9.0; 6], [1, 2], &IntegratedGradientsPlan::default(), &pre);
        assert_eq!(b, vec![-1.0, -1.0, -1.0, -1.0, 0.0, 0.0]);
    }

    #[test]
    fn noise_baseline_depends_on_the_seed_only() {
        let pre = Preprocessing::unit_range([2, 2]);
        let plan = |seed| IntegratedGradientsPlan {
            baseline: Baseline::Noise,
            seed,
            ..IntegratedGradientsPlan::default()
        };
        let a = baseline(&[0.0; 12], [2, 2], &plan(1), &pre);
        assert_eq!(a, baseline(&[5.0; 12], [2, 2], &plan(1), &pre));
        assert_ne!(a, baseline(&[0.0; 12], [2, 2], &plan(2), &pre));
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_ne!(a[..4], a[4..8], "RGB: the channels are drawn apart");

        let gray = Preprocessing {
            color: ColorMode::Grayscale,
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 2.0],
            ..pre
        };
        let g = baseline(&[0.0; 12], [2, 2], &plan(1), &gray);
        let pixels: Vec<f32> = g[..4].iter().map(|v| v * 0.5 + 0.5).collect();
        for (p, &pixel) in pixels.iter().enumerate() {
            assert!((g[4 + p] * 0.25 + 0.25 - pixel).abs() < 1e-6, "green = red");
            assert!((g[8 + p] * 2.0 - pixel).abs() < 1e-6, "blue = red");
        }
    }
}
