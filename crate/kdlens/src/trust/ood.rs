//! Out-of-distribution warning from two scores, each with a threshold at the same quantile of
//! the validation images' scores; an input is in distribution when it passes both:
//!
//! - the Mahalanobis distance (Lee et al., 2018) of its pooled features to the nearest training
//!   class — it catches inputs far from everything in feature space (noise, a blank page), which
//!   a network may still classify confidently;
//! - the energy `−log Σ_c exp(z_c)` of its logits (Liu et al., 2020) — it catches inputs the
//!   network has no strong answer for, such as a brain MRI put to a clothing classifier, whose
//!   pooled features can sit among the training classes'.
//!
//! The features are the global average of the model's last stage (`[channels]`; for DenseNet
//! exactly what its classifier sees). The shared within-class covariance is kept compactly —
//! its `k` leading principal directions with their variances and one variance for the rest —
//! so that a bundle carries a few hundred kilobytes at most:
//!
//! `d²(f) = min_c [ Σ_j (v_j·(f − μ_c))² / λ_j + ‖r_c‖² / λ_rest ]`, `r_c` the part of
//! `f − μ_c` outside the `k` directions.

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    model::{ForwardTrace, LayeredClassifier, global_average_pool},
    read_f32,
};

/// Principal directions kept by default.
pub const DEFAULT_COMPONENTS: usize = 16;

/// Share of validation images accepted as in-distribution by the threshold.
pub const DEFAULT_QUANTILE: f64 = 0.95;

/// What a model saw in training, stored in its bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodReference {
    /// Feature width (channels of the last stage).
    pub dim: usize,
    /// Per-class feature means, `[classes][dim]`.
    pub class_means: Vec<Vec<f32>>,
    /// Leading unit eigenvectors of the within-class covariance, `[k][dim]`.
    pub components: Vec<Vec<f32>>,
    /// Their variances (eigenvalues), `[k]`.
    pub variances: Vec<f32>,
    /// Mean variance of the remaining directions.
    pub residual_variance: f32,
    /// Mahalanobis scores above this are out of distribution.
    pub threshold: f32,
    /// Energies above this are out of distribution (`None` in references written before the
    /// energy check existed).
    #[serde(default)]
    pub energy_threshold: Option<f32>,
    /// The share of validation images whose score is at most the threshold.
    pub quantile: f64,
    /// Training images the statistics come from.
    pub samples: usize,
}

/// The verdict on one input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InDistribution {
    /// Squared Mahalanobis distance to the nearest training class.
    pub score: f32,
    /// The bundle's threshold for it.
    pub threshold: f32,
    /// Energy of the logits, `−log Σ exp(z)`.
    pub energy: f32,
    /// The bundle's threshold for it, when it has one.
    pub energy_threshold: Option<f32>,
    /// Both within their thresholds: the input resembles the training images.
    pub in_distribution: bool,
    /// The nearest training class.
    pub nearest_class: usize,
}

/// The energy `−log Σ_c exp(z_c)` of one row of logits (computed stably): low when one class
/// stands out, high when none does.
pub fn energy(logits: &[f32]) -> f32 {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&z| ((z - max) as f64).exp()).sum();
    -(max as f64 + sum.ln()) as f32
}

/// The value at `quantile` of `values` (the smallest value with at least that share of values at
/// or below it).
fn quantile_of(mut values: Vec<f32>, quantile: f64) -> f32 {
    values.sort_by(f32::total_cmp);
    let rank =
        ((quantile.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The pooled features `[batch, channels]` of a forward pass: the global average of its last
/// stage (for DenseNet exactly what the classifier sees).
pub fn pooled_features(trace: &ForwardTrace) -> Result<Tensor<2>> {
    let last = trace.activations.last().cloned().ok_or_else(|| {
        Error::InvalidRequest("the model has no stage to take features from".into())
    })?;
    Ok(global_average_pool(last))
}

/// A batch's pooled features and logits, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct PooledBatch {
    /// Row-major `[n, dim]`.
    pub features: Vec<f32>,
    /// Row-major `[n, classes]`.
    pub logits: Vec<f32>,
    /// Feature width.
    pub dim: usize,
}

/// The pooled features and logits of `model` for `images` `[n, 3, H, W]`.
pub async fn pooled_batch<M: LayeredClassifier + ?Sized>(
    model: &M,
    images: Tensor<4>,
) -> Result<PooledBatch> {
    let trace = model.forward_with_activations(images);
    let features = pooled_features(&trace)?;
    let dim = features.dims()[1];
    Ok(PooledBatch {
        features: read_f32(features).await?,
        logits: read_f32(trace.logits).await?,
        dim,
    })
}

/// About `limit` positions of `labels` (ascending) for a reference: each class's share of
/// `limit` (rounded down, at least one image of every class present), spread evenly over that
/// class's images.
pub fn reference_sample(labels: &[usize], limit: usize) -> Vec<usize> {
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &label) in labels.iter().enumerate() {
        by_class.entry(label).or_default().push(i);
    }
    let total = labels.len().max(1);
    let mut chosen: Vec<usize> = by_class
        .values()
        .flat_map(|members| {
            let share = (members.len() * limit)
                .div_ceil(total)
                .clamp(1, members.len());
            (0..share).map(move |k| members[k * members.len() / share])
        })
        .collect();
    chosen.sort_unstable();
    chosen
}

impl OodReference {
    /// The reference of `model` with the default components and quantile: `train` gives
    /// batches of training images `[n, 3, H, W]` with their labels, `validation` batches of
    /// validation images. Every class of the model needs at least one training image.
    pub async fn of_model<M, T, V>(model: &M, train: T, validation: V) -> Result<Self>
    where
        M: LayeredClassifier + ?Sized,
        T: IntoIterator<Item = (Tensor<4>, Vec<usize>)>,
        V: IntoIterator<Item = Tensor<4>>,
    {
        let (mut features, mut labels, mut dim) = (Vec::new(), Vec::new(), 0);
        for (images, batch_labels) in train {
            let batch = pooled_batch(model, images).await?;
            features.extend(batch.features);
            labels.extend(batch_labels);
            dim = batch.dim;
        }
        let (mut validation_features, mut validation_logits) = (Vec::new(), Vec::new());
        for images in validation {
            let batch = pooled_batch(model, images).await?;
            validation_features.extend(batch.features);
            validation_logits.extend(batch.logits);
        }
        Self::fit(
            &features,
            &labels,
            model.num_classes(),
            dim,
            &validation_features,
            &validation_logits,
            DEFAULT_COMPONENTS,
            DEFAULT_QUANTILE,
        )
    }

    /// Checks a stored reference against a model of `num_classes` classes: one mean per class,
    /// every vector `dim` long, positive variances, thresholds that are numbers.
    pub fn validate(&self, num_classes: usize) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidBundle(format!("OOD reference: {why}")));
        if self.dim == 0 || self.class_means.len() != num_classes {
            return bad(format!(
                "{} class means of width {} for a {num_classes}-class model",
                self.class_means.len(),
                self.dim
            ));
        }
        if self.samples < num_classes {
            return bad(format!(
                "fitted on {} images: some of the {num_classes} classes had none",
                self.samples
            ));
        }
        if self.components.len() != self.variances.len()
            || self
                .class_means
                .iter()
                .chain(&self.components)
                .any(|v| v.len() != self.dim)
        {
            return bad(format!(
                "{} components and {} variances, not all of width {}",
                self.components.len(),
                self.variances.len(),
                self.dim
            ));
        }
        let positive = |v: f32| v.is_finite() && v > 0.0;
        if !self.variances.iter().all(|&v| positive(v)) || !positive(self.residual_variance) {
            return bad("a variance is not a positive number".into());
        }
        if self.threshold.is_nan() || self.energy_threshold.is_some_and(f32::is_nan) {
            return bad("a threshold is not a number".into());
        }
        Ok(())
    }

    /// Fits class means and the compact shared covariance to `features` (`n` rows of `dim`)
    /// with class `labels`, and sets both thresholds at `quantile` of the validation images'
    /// scores: `validation` features (rows of `dim`) and `validation_logits` (rows of
    /// `num_classes`).
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        features: &[f32],
        labels: &[usize],
        num_classes: usize,
        dim: usize,
        validation: &[f32],
        validation_logits: &[f32],
        components: usize,
        quantile: f64,
    ) -> Result<Self> {
        let n = labels.len();
        if dim == 0
            || features.len() != n * dim
            || validation.is_empty()
            || !validation.len().is_multiple_of(dim)
            || validation_logits.len() != validation.len() / dim * num_classes
        {
            return Err(Error::LengthMismatch(format!(
                "{} feature values for {n} labels of width {dim}, {} validation values",
                features.len(),
                validation.len()
            )));
        }
        if labels.iter().any(|&l| l >= num_classes) {
            return Err(Error::InvalidRequest(
                "a label is outside the class range".into(),
            ));
        }
        let rows = || features.chunks_exact(dim).zip(labels);
        let mut sums = vec![vec![0.0f64; dim]; num_classes];
        let mut counts = vec![0usize; num_classes];
        for (row, &label) in rows() {
            counts[label] += 1;
            sums[label]
                .iter_mut()
                .zip(row)
                .for_each(|(s, &v)| *s += v as f64);
        }
        if let Some(empty) = counts.iter().position(|&c| c == 0) {
            return Err(Error::InvalidRequest(format!(
                "class {empty} has none of the {n} training images the reference is fitted on"
            )));
        }
        let means: Vec<Vec<f64>> = sums
            .into_iter()
            .zip(&counts)
            .map(|(s, &c)| s.into_iter().map(|v| v / c.max(1) as f64).collect())
            .collect();
        let mut covariance = vec![0.0f64; dim * dim];
        for (row, &label) in rows() {
            let centred: Vec<f64> = row
                .iter()
                .zip(&means[label])
                .map(|(&v, m)| v as f64 - m)
                .collect();
            for i in 0..dim {
                let ci = centred[i];
                for j in i..dim {
                    covariance[i * dim + j] += ci * centred[j];
                }
            }
        }
        for i in 0..dim {
            for j in i..dim {
                let v = covariance[i * dim + j] / n.max(2) as f64;
                covariance[i * dim + j] = v;
                covariance[j * dim + i] = v;
            }
        }
        let trace: f64 = (0..dim).map(|i| covariance[i * dim + i]).sum();
        let floor = (trace / dim as f64).max(f64::MIN_POSITIVE) * 1e-6;
        let k = components
            .min(dim.saturating_sub(1))
            .max(if dim == 1 { 1 } else { 0 });
        let (vectors, values) = leading_eigenvectors(&mut covariance, dim, k);
        let kept: f64 = values.iter().sum();
        let residual = if dim > k {
            ((trace - kept) / (dim - k) as f64).max(floor)
        } else {
            floor
        };
        let mut reference = Self {
            dim,
            class_means: means
                .iter()
                .map(|m| m.iter().map(|&v| v as f32).collect())
                .collect(),
            components: vectors
                .iter()
                .map(|v| v.iter().map(|&x| x as f32).collect())
                .collect(),
            variances: values.iter().map(|&v| v.max(floor) as f32).collect(),
            residual_variance: residual as f32,
            threshold: f32::INFINITY,
            energy_threshold: None,
            quantile,
            samples: n,
        };
        let scores = validation
            .chunks_exact(dim)
            .map(|f| reference.nearest(f).0)
            .collect();
        reference.threshold = quantile_of(scores, quantile);
        let energies = validation_logits
            .chunks_exact(num_classes)
            .map(energy)
            .collect();
        reference.energy_threshold = Some(quantile_of(energies, quantile));
        Ok(reference)
    }

    /// The squared distance to the nearest class and that class.
    fn nearest(&self, feature: &[f32]) -> (f32, usize) {
        self.class_means
            .iter()
            .enumerate()
            .map(|(c, mean)| {
                let centred: Vec<f64> = feature
                    .iter()
                    .zip(mean)
                    .map(|(&f, &m)| (f - m) as f64)
                    .collect();
                let norm: f64 = centred.iter().map(|v| v * v).sum();
                let mut explained = 0.0;
                let mut score = 0.0;
                for (v, &variance) in self.components.iter().zip(&self.variances) {
                    let p: f64 = v.iter().zip(&centred).map(|(&a, b)| a as f64 * b).sum();
                    explained += p * p;
                    score += p * p / variance as f64;
                }
                score += (norm - explained).max(0.0) / self.residual_variance as f64;
                (score as f32, c)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((f32::INFINITY, 0))
    }

    /// The verdict on one input's pooled features (`dim` values) and logits.
    pub fn assess(&self, feature: &[f32], logits: &[f32]) -> Result<InDistribution> {
        if feature.len() != self.dim || logits.len() != self.class_means.len() {
            return Err(Error::LengthMismatch(format!(
                "{} features and {} logits for a reference of width {} and {} classes",
                feature.len(),
                logits.len(),
                self.dim,
                self.class_means.len()
            )));
        }
        let (score, nearest_class) = self.nearest(feature);
        let energy = energy(logits);
        Ok(InDistribution {
            score,
            threshold: self.threshold,
            energy,
            energy_threshold: self.energy_threshold,
            in_distribution: score <= self.threshold
                && self.energy_threshold.is_none_or(|t| energy <= t),
            nearest_class,
        })
    }
}

/// The `k` leading eigenvectors and eigenvalues of the symmetric `matrix` (`dim × dim`,
/// row-major, deflated in place) by power iteration from fixed starting vectors.
fn leading_eigenvectors(matrix: &mut [f64], dim: usize, k: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut vectors = Vec::with_capacity(k);
    let mut values = Vec::with_capacity(k);
    for j in 0..k {
        let mut v: Vec<f64> = (0..dim)
            .map(|i| 1.0 + ((i * 7 + j * 13) % 11) as f64 / 11.0)
            .collect();
        let mut value = 0.0;
        for _ in 0..150 {
            let mut next = vec![0.0; dim];
            for (i, out) in next.iter_mut().enumerate() {
                *out = matrix[i * dim..(i + 1) * dim]
                    .iter()
                    .zip(&v)
                    .map(|(a, b)| a * b)
                    .sum();
            }
            let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            next.iter_mut().for_each(|x| *x /= norm);
            let change: f64 = next.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = next;
            value = norm;
            if change < 1e-10 {
                break;
            }
        }
        for i in 0..dim {
            for l in 0..dim {
                matrix[i * dim + l] -= value * v[i] * v[l];
            }
        }
        vectors.push(v);
        values.push(value);
    }
    (vectors, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_iteration_finds_the_eigenpairs_of_a_known_matrix() {
        // [[2, 1], [1, 2]]: eigenvalues 3 (along (1, 1)) and 1 (along (1, −1))
        let mut m = vec![2.0, 1.0, 1.0, 2.0];
        let (vectors, values) = leading_eigenvectors(&mut m, 2, 2);
        assert!((values[0] - 3.0).abs() < 1e-9 && (values[1] - 1.0).abs() < 1e-6);
        let s = 0.5f64.sqrt();
        assert!(
            (vectors[0][0].abs() - s).abs() < 1e-6 && (vectors[0][0] - vectors[0][1]).abs() < 1e-6
        );
    }

    /// Two classes around (0, 0, 0) and (10, 0, 0) with spread along the axes.
    fn training() -> (Vec<f32>, Vec<usize>) {
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for (label, centre) in [(0usize, 0.0f32), (1, 10.0)] {
            for i in 0..40 {
                let t = i as f32 / 39.0 - 0.5;
                features.extend([
                    centre + 2.0 * t,
                    (i % 5) as f32 * 0.2 - 0.4,
                    ((i * 3) % 7) as f32 * 0.1 - 0.3,
                ]);
                labels.push(label);
            }
        }
        (features, labels)
    }

    /// Logits of a confident answer for `class` (of two).
    fn confident(class: usize) -> [f32; 2] {
        if class == 0 { [6.0, 0.0] } else { [0.0, 6.0] }
    }

    #[test]
    fn energy_is_low_for_a_clear_answer_and_minus_log_of_the_count_for_none() {
        // −log(e⁰ + e⁰) = −ln 2; a clear answer: −6 − ln(1 + e⁻⁶)
        assert!((energy(&[0.0, 0.0]) + 2f32.ln()).abs() < 1e-6);
        assert!((energy(&[6.0, 0.0]) + 6.0 + (1.0f32 + (-6.0f32).exp()).ln()).abs() < 1e-5);
        assert!(energy(&[1000.0, 0.0]).is_finite());
    }

    #[test]
    fn training_like_inputs_pass_and_far_or_unclear_ones_are_flagged() {
        let (features, labels) = training();
        let logits: Vec<f32> = labels.iter().flat_map(|&l| confident(l)).collect();
        let reference =
            OodReference::fit(&features, &labels, 2, 3, &features, &logits, 2, 0.95).unwrap();
        let near = reference.assess(&[10.3, 0.1, 0.0], &confident(1)).unwrap();
        assert!(near.in_distribution && near.nearest_class == 1, "{near:?}");
        let far = reference
            .assess(&[5.0, 30.0, -20.0], &confident(0))
            .unwrap();
        assert!(
            !far.in_distribution && far.score > near.score * 100.0,
            "{far:?}"
        );
        // features like the training data, but no class stands out
        let unclear = reference.assess(&[10.3, 0.1, 0.0], &[1.0, 1.2]).unwrap();
        assert!(
            !unclear.in_distribution && unclear.score <= unclear.threshold,
            "{unclear:?}"
        );
        // 95 % of the fitting rows (here also the validation rows) are accepted
        let accepted = features
            .chunks_exact(3)
            .zip(&labels)
            .filter(|(f, l)| {
                reference
                    .assess(f, &confident(**l))
                    .unwrap()
                    .in_distribution
            })
            .count();
        assert!(accepted >= 76, "{accepted} of 80");
        let json = serde_json::to_string(&reference).unwrap();
        assert_eq!(
            serde_json::from_str::<OodReference>(&json).unwrap(),
            reference
        );
    }

    #[test]
    fn a_reference_sample_spreads_over_every_class() {
        // 8 images of class 0, 2 of class 1, in no order; 5 wanted: 4 of class 0, 1 of class 1.
        let labels = [0, 0, 1, 0, 0, 0, 0, 1, 0, 0];
        assert_eq!(reference_sample(&labels, 5), vec![0, 2, 3, 5, 8]);
        // Fewer wanted than there are classes: one of each all the same.
        assert_eq!(reference_sample(&labels, 1), vec![0, 2]);
        assert_eq!(reference_sample(&labels, 100).len(), 10);
        assert!(reference_sample(&[], 4).is_empty());
    }

    #[test]
    fn a_class_without_training_images_is_an_error_and_a_broken_reference_is_refused() {
        let (features, labels) = training();
        let three: Vec<f32> = labels
            .iter()
            .flat_map(|&c| [confident(c)[0], confident(c)[1], 0.0])
            .collect();
        let err = OodReference::fit(&features, &labels, 3, 3, &features, &three, 2, 0.95)
            .unwrap_err()
            .to_string();
        assert!(err.contains("class 2 has none"), "{err}");
        let logits: Vec<f32> = labels.iter().flat_map(|&c| confident(c)).collect();
        let reference =
            OodReference::fit(&features, &labels, 2, 3, &features, &logits, 2, 0.95).unwrap();
        assert!(reference.validate(2).is_ok());
        assert!(reference.validate(3).is_err(), "one mean per class");
        let mut short = reference.clone();
        short.components[0].pop();
        assert!(short.validate(2).is_err());
        let mut flat = reference.clone();
        flat.residual_variance = 0.0;
        assert!(flat.validate(2).is_err());
        let mut unknowing = reference;
        unknowing.threshold = f32::NAN;
        assert!(unknowing.validate(2).is_err());
    }

    #[test]
    fn mismatched_widths_are_errors() {
        let (features, labels) = training();
        let logits = vec![0.0; 2 * labels.len()];
        assert!(OodReference::fit(&features, &labels, 2, 4, &features, &logits, 2, 0.95).is_err());
        assert!(
            OodReference::fit(&features, &labels, 2, 3, &features, &logits[2..], 2, 0.95).is_err()
        );
        let reference =
            OodReference::fit(&features, &labels, 2, 3, &features, &logits, 2, 0.95).unwrap();
        assert!(reference.assess(&[1.0, 2.0], &[0.0, 0.0]).is_err());
        assert!(reference.assess(&[1.0, 2.0, 3.0], &[0.0]).is_err());
    }
}
