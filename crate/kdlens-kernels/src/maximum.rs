//! The larger of two `f32`s as one instruction on every target.
//!
//! `f32::max` promises to ignore a NaN operand, which WebAssembly's `f32.max` (NaN-propagating)
//! does not do, so on wasm32 every `f32::max` is a call into libm's `fmaxf` — 7 % of the page's
//! explanation time in the students' ReLU and max-pool loops, which it also keeps from being
//! vectorised. A comparison compiles to a `select` (or `f32x4.pmax` in a vectorised loop) there
//! and to `maxss`/`vmaxps` natively.

/// `a` if it is greater than `b`, otherwise `b` (so a NaN `a` gives `b`, like `f32::max`; a NaN
/// `b` is returned as it is).
#[inline(always)]
pub fn max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// `v` where it is positive, `0` otherwise (NaN gives 0, like `v.max(0.0)`).
#[inline(always)]
pub fn relu(v: f32) -> f32 {
    max(v, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_greater_value_and_zeroes_negatives() {
        assert_eq!(max(1.5, -2.0), 1.5);
        assert_eq!(max(-2.0, 1.5), 1.5);
        assert_eq!(max(f32::NEG_INFINITY, -3.0), -3.0);
        assert_eq!(relu(-0.25), 0.0);
        assert_eq!(relu(0.25), 0.25);
        assert_eq!(relu(f32::NAN), 0.0);
    }
}
