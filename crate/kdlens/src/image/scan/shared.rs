//! What the DICOM and NIfTI decoders share: the entry point, index choice, size limits, and
//! values → gray pixels.

use super::AUTO_PERCENTILES;
use super::{
    MAX_SIDE, MAX_VALUES, Ramp, ScanFormat, ScanImage, ScanOptions, WindowChoice, dicom, nifti,
    sniff,
};
use crate::{Error, Result, image::RgbaImage};

/// Decodes a DICOM or NIfTI file held in `bytes` as `options` say. Errors say what is wrong with
/// the file (an unsupported transfer syntax by name, a size over the limits) and never quote its
/// header.
pub fn decode_scan(bytes: &[u8], options: &ScanOptions) -> Result<ScanImage> {
    match sniff(bytes) {
        Some(ScanFormat::Dicom) => dicom::decode(bytes, options),
        Some(ScanFormat::Nifti) => nifti::decode(bytes, options),
        None => Err(Error::Decode("neither a DICOM nor a NIfTI file".into())),
    }
}

/// The index an optional choice picks among `count`: the middle one by default; an error naming
/// `what` when it is out of range.
pub(super) fn pick(choice: Option<usize>, count: usize, what: &str) -> Result<usize> {
    match choice {
        None => Ok(count / 2),
        Some(i) if i < count => Ok(i),
        Some(i) => Err(Error::InvalidRequest(format!(
            "{what} {i} does not exist: the file has {count} (numbered from 0)"
        ))),
    }
}

/// Checks a claimed plane size and value count against [`MAX_SIDE`] and [`MAX_VALUES`] before
/// anything is allocated for them.
pub(super) fn check_size([rows, cols]: [usize; 2], values: usize) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(Error::Decode(format!(
            "the scan has no pixels ({rows}×{cols})"
        )));
    }
    if rows > MAX_SIDE || cols > MAX_SIDE {
        return Err(Error::Decode(format!(
            "the scan is {rows}×{cols} pixels; the largest accepted side is {MAX_SIDE}"
        )));
    }
    if values > MAX_VALUES {
        return Err(Error::Decode(format!(
            "the scan claims {values} values; at most {MAX_VALUES} are read"
        )));
    }
    Ok(())
}

/// A gray image: `values` (`rows × cols`, row-major) through `display` (each value to `[0, 1]`),
/// inverted for MONOCHROME1, scaled to 0–255.
pub(super) fn gray_image(
    values: &[f32],
    [rows, cols]: [usize; 2],
    display: impl Fn(f64) -> f64,
    invert: bool,
) -> Result<RgbaImage> {
    let mut pixels = Vec::with_capacity(rows * cols * 4);
    for &v in values {
        let shade = display(v as f64);
        let shade = if invert { 1.0 - shade } else { shade };
        let byte = (shade * 255.0).round().clamp(0.0, 255.0) as u8;
        pixels.extend_from_slice(&[byte, byte, byte, 255]);
    }
    RgbaImage::new(cols, rows, pixels)
}

/// The smallest and largest finite value of `values`; `None` when there is none.
pub(super) fn value_range(values: &[f32]) -> Option<[f64; 2]> {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold(None, |range, &v| {
            let v = f64::from(v);
            Some(match range {
                None => [v, v],
                Some([low, high]) => [
                    if v < low { v } else { low },
                    if v > high { v } else { high },
                ],
            })
        })
}

/// The ramp of a window choice (`Auto` as the 1–99 % percentiles; DICOM resolves its own `Auto`
/// first), over the
/// plane's `values`; with where it came from.
pub(super) fn chosen_ramp(choice: WindowChoice, values: &[f32]) -> Option<(Ramp, String)> {
    let (low, high) = AUTO_PERCENTILES;
    match choice {
        WindowChoice::Auto => {
            Ramp::percentiles(values, low, high).map(|r| (r, "percentiles".to_string()))
        }
        WindowChoice::Full => {
            Ramp::percentiles(values, 0.0, 100.0).map(|r| (r, "full".to_string()))
        }
        WindowChoice::Percentiles { low, high } => {
            Ramp::percentiles(values, low, high).map(|r| (r, "percentiles".to_string()))
        }
        WindowChoice::Preset(p) => Some((p.window().ramp(), p.name().to_string())),
        WindowChoice::Manual(w) => Some((w.ramp(), "manual".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_middle_by_default_and_an_error_past_the_end() {
        assert_eq!(pick(None, 5, "frame").unwrap(), 2);
        assert_eq!(pick(Some(4), 5, "frame").unwrap(), 4);
        let err = pick(Some(5), 5, "frame").unwrap_err().to_string();
        assert!(err.contains("frame 5") && err.contains("has 5"), "{err}");
    }

    #[test]
    fn claimed_sizes_are_bounded_before_allocation() {
        assert!(check_size([512, 512], 512 * 512).is_ok());
        assert!(check_size([0, 512], 0).is_err());
        assert!(check_size([MAX_SIDE + 1, 1], 1).is_err());
        assert!(check_size([10_000, 10_000], 10_000 * 10_000 * 10).is_err());
        assert!(decode_scan(b"plain text", &ScanOptions::default()).is_err());
    }

    #[test]
    fn the_range_skips_values_that_are_not_finite() {
        assert_eq!(
            value_range(&[3.0, f32::NAN, -2.5, f32::INFINITY, 7.0]),
            Some([-2.5, 7.0])
        );
        assert_eq!(value_range(&[f32::NAN]), None);
        assert_eq!(value_range(&[]), None);
    }
}
