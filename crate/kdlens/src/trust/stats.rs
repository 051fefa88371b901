//! Summaries of a measure over many images, and how sure a comparison of two is.
//!
//! An audit compares measures taken on the same images: two students' agreement with their
//! teacher, a student's deletion area against the teacher's. [`PairedDifference`] takes the
//! difference image by image and gives its mean with a percentile-bootstrap 95 % interval
//! (Efron & Tibshirani, 1993, ch. 13): resampling whole images keeps the pairing, so what the
//! two share (an image that is hard for both) cancels out.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

/// Mean, sample standard deviation and count of a list of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Arithmetic mean (NaN when empty).
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub sd: f64,
    /// Number of values.
    pub n: usize,
}

impl Stats {
    /// The statistics of `values`.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Self { mean, sd, n }
    }

    /// `mean ± sd` with `digits` decimals, or `—` without values.
    pub fn show(&self, digits: usize) -> String {
        if self.n == 0 {
            "—".into()
        } else {
            format!("{:.digits$} ± {:.digits$}", self.mean, self.sd)
        }
    }
}

/// Bootstrap resamples behind every interval: enough that the 2.5 % and 97.5 % points move by
/// well under the third decimal between seeds.
pub const BOOTSTRAP_RESAMPLES: usize = 4000;

/// The coverage of the intervals.
pub const CONFIDENCE: f64 = 0.95;

/// `a − b` over the images that have both, with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    /// Mean of the per-image differences `a − b`.
    pub mean: f64,
    /// The [`CONFIDENCE`] percentile-bootstrap interval of that mean, `[low, high]`.
    pub interval: [f64; 2],
    /// Images with both values.
    pub n: usize,
}

impl PairedDifference {
    /// The difference of paired values (`None` on either side drops the image), resampled
    /// [`BOOTSTRAP_RESAMPLES`] times from `seed`; `None` without a single pair.
    pub fn of(a: &[Option<f64>], b: &[Option<f64>], seed: u64) -> Option<Self> {
        let differences: Vec<f64> = a
            .iter()
            .zip(b)
            .filter_map(|(a, b)| Some((*a)? - (*b)?))
            .filter(|d| d.is_finite())
            .collect();
        let n = differences.len();
        if n == 0 {
            return None;
        }
        let mean = differences.iter().sum::<f64>() / n as f64;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
            .map(|_| {
                (0..n)
                    .map(|_| differences[rng.random_range(0..n)])
                    .sum::<f64>()
                    / n as f64
            })
            .collect();
        means.sort_by(f64::total_cmp);
        let tail = (1.0 - CONFIDENCE) / 2.0;
        Some(Self {
            mean,
            interval: [quantile(&means, tail), quantile(&means, 1.0 - tail)],
            n,
        })
    }

    /// Whether the interval excludes 0: the data support a difference in the sign of `mean`.
    pub fn is_clear(&self) -> bool {
        self.interval[0] > 0.0 || self.interval[1] < 0.0
    }

    /// `+0.123 [+0.045, +0.201]` with `digits` decimals, and "no clear difference" when the
    /// interval contains 0.
    pub fn show(&self, digits: usize) -> String {
        let [low, high] = self.interval;
        let shown = format!(
            "{:+.digits$} [{low:+.digits$}, {high:+.digits$}]",
            self.mean
        );
        if self.is_clear() {
            shown
        } else {
            format!("{shown}, no clear difference")
        }
    }
}

/// The `q` quantile of ascending `sorted` values, linearly interpolated between order
/// statistics (NumPy's default, "type 7").
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_mean_and_sample_deviation() {
        let s = Stats::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean, 2.5);
        assert!((s.sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(Stats::of(&[7.0]).sd, 0.0);
        assert_eq!(Stats::of(&[]).show(2), "—");
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let sorted = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile(&sorted, 0.0), 1.0);
        assert_eq!(quantile(&sorted, 1.0), 8.0);
        // position 0.5 · 3 = 1.5: halfway from 2 to 4
        assert_eq!(quantile(&sorted, 0.5), 3.0);
        // position 0.025 · 3 = 0.075
        assert!((quantile(&sorted, 0.025) - 1.075).abs() < 1e-12);
    }

    #[test]
    fn the_difference_pairs_images_and_skips_missing_values() {
        let a = [Some(0.5), None, Some(0.75), Some(1.0)];
        let b = [Some(0.25), Some(9.0), Some(0.25), None];
        let d = PairedDifference::of(&a, &b, 1).unwrap();
        assert_eq!(d.n, 2);
        assert_eq!(d.mean, 0.375);
        assert!(d.interval[0] >= 0.25 && d.interval[1] <= 0.5, "{d:?}");
        assert_eq!(PairedDifference::of(&[None], &[Some(1.0)], 1), None);
    }

    #[test]
    fn equal_differences_have_no_spread_and_are_clear() {
        let a: Vec<Option<f64>> = (0..10).map(|i| Some(i as f64 + 0.25)).collect();
        let b: Vec<Option<f64>> = (0..10).map(|i| Some(i as f64)).collect();
        let d = PairedDifference::of(&a, &b, 3).unwrap();
        assert_eq!((d.mean, d.interval), (0.25, [0.25, 0.25]));
        assert!(d.is_clear());
        assert_eq!(d.show(2), "+0.25 [+0.25, +0.25]");
    }

    #[test]
    fn differences_of_both_signs_are_no_clear_difference() {
        let a: Vec<Option<f64>> = (0..40)
            .map(|i| Some(if i % 2 == 0 { 1.0 } else { -1.0 }))
            .collect();
        let b = vec![Some(0.0); 40];
        let d = PairedDifference::of(&a, &b, 7).unwrap();
        assert_eq!(d.mean, 0.0);
        assert!(!d.is_clear(), "{d:?}");
        assert!(d.show(3).ends_with("no clear difference"), "{}", d.show(3));
    }

    #[test]
    fn the_interval_is_the_normal_one_for_many_images_and_repeats_with_its_seed() {
        // 400 differences 0, 1, …, 9 repeated: mean 4.5, sd √(99/12 · 400/399); the mean's
        // 95 % interval is close to mean ± 1.96 · sd / √400.
        let a: Vec<Option<f64>> = (0..400).map(|i| Some((i % 10) as f64)).collect();
        let b = vec![Some(0.0); 400];
        let d = PairedDifference::of(&a, &b, 11).unwrap();
        let sd = (99.0f64 / 12.0 * 400.0 / 399.0).sqrt();
        let half = 1.96 * sd / 20.0;
        assert!((d.mean - 4.5).abs() < 1e-12);
        for (got, expected) in d.interval.iter().zip([4.5 - half, 4.5 + half]) {
            assert!((got - expected).abs() < 0.03, "{d:?} against ±{half}");
        }
        assert_eq!(PairedDifference::of(&a, &b, 11), Some(d));
    }
}
