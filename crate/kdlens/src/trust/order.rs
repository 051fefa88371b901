//! The one order in which the trust measures rank a map's positions.
//!
//! Attribution maps hold many exact zeros (every background pixel of integrated gradients with a
//! black baseline), of either sign: `f32::total_cmp` would put −0.0 below +0.0 and order those
//! pixels by the sign bit of their zero. Here the two zeros are equal, so equal values keep
//! their position order, and NaN ranks last.

use std::cmp::Ordering;

/// The value `v` as it is ranked: −0.0 as +0.0, NaN below every number.
fn rank_key(v: f32) -> f32 {
    if v.is_nan() {
        f32::NEG_INFINITY
    } else if v == 0.0 {
        0.0
    } else {
        v
    }
}

/// Whether position `a` of `values` ranks before position `b`: higher value first, then lower
/// position.
fn descending(values: &[f32], a: usize, b: usize) -> Ordering {
    rank_key(values[b])
        .total_cmp(&rank_key(values[a]))
        .then(a.cmp(&b))
}

/// Positions of `values` ordered by decreasing value (±0 equal, ties in position order, NaN
/// last).
pub fn pixel_order(values: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| descending(values, a, b));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_descending_with_ties_by_position_and_nan_last() {
        assert_eq!(
            pixel_order(&[0.5, f32::NAN, 2.0, 0.5, -1.0]),
            vec![2, 0, 3, 4, 1]
        );
    }

    #[test]
    fn the_two_zeros_tie_and_keep_their_position_order() {
        // total_cmp alone would give [2, 1, 3, 0, 4]: +0 before −0.
        assert_eq!(
            pixel_order(&[-0.0, 0.0, 1.0, 0.0, -1.0]),
            vec![2, 0, 1, 3, 4]
        );
    }
}
