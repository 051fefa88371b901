//! Medical scans — DICOM files and NIfTI-1/2 volumes — turned into the 8-bit RGBA image that the
//! rest of the preprocessing path takes, the way a viewer shows them: the modality LUT (rescale
//! slope and intercept), then an intensity window, MONOCHROME1 inverted, one frame of a
//! multi-frame file or one slice of a volume in radiological orientation.
//!
//! The options and facts are always here (they are part of a model's preprocessing); decoding
//! needs the `scan` feature: pure Rust (dicom-rs with its Rust codecs, the `nifti` crate), so that
//! the browser's worker can run the same code. Nothing that identifies a patient leaves this module: [`ScanFacts`] carries only
//! acquisition facts (modality, sizes, the window used), and errors name the problem, never a
//! header value.

#[cfg(feature = "scan")]
mod dicom;
#[cfg(feature = "scan")]
mod dicom_codecs;
#[cfg(feature = "scan")]
mod dicom_lengths;
#[cfg(feature = "scan")]
mod dicom_native;
#[cfg(feature = "scan")]
mod dicom_open;
#[cfg(feature = "scan")]
mod dicom_palette;
#[cfg(feature = "scan")]
mod dicom_rle;
#[cfg(feature = "scan")]
mod dicom_un;
#[cfg(feature = "scan")]
mod nifti;
#[cfg(feature = "scan")]
mod nifti_header;
#[cfg(feature = "scan")]
mod shared;
#[cfg(all(test, feature = "scan"))]
mod test_objects;
mod window;

use serde::{Deserialize, Serialize};

#[cfg(feature = "scan")]
pub use shared::decode_scan;
pub use window::{AUTO_PERCENTILES, Preset, Ramp, Window, WindowChoice};

use super::RgbaImage;
use crate::{Error, Result};

/// Largest accepted side of a scan's plane, in pixels.
pub const MAX_SIDE: usize = 12_000;
/// Largest number of values (voxels × samples) a scan may claim, checked before allocating.
pub const MAX_VALUES: usize = 1 << 28;

/// How a scan becomes an image: the one option vocabulary of the command line, the manifest and
/// the page. Options that do not apply to a file (a slice for a DICOM file) are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanOptions {
    /// The intensity window.
    pub window: WindowChoice,
    /// Frame of a multi-frame DICOM file, or volume of a 4-D NIfTI file (from 0); the middle one
    /// when absent.
    pub frame: Option<usize>,
    /// Plane of a NIfTI volume.
    pub plane: Plane,
    /// Slice of a NIfTI volume along the plane's normal, counted from the patient's inferior
    /// (axial), posterior (coronal) or left (sagittal) side, from 0 (the order of nibabel's
    /// `as_closest_canonical`); the middle one when absent.
    pub slice: Option<usize>,
}

impl ScanOptions {
    /// These options, except those left at their default, which take `base`'s: a choice made now
    /// over one recorded earlier (a teacher's, for its student). A setting chosen equal to its
    /// default (`auto`, `axial`) cannot undo `base`'s.
    pub fn or_defaults_from(self, base: ScanOptions) -> ScanOptions {
        let default = ScanOptions::default();
        ScanOptions {
            window: if self.window == default.window {
                base.window
            } else {
                self.window
            },
            frame: self.frame.or(base.frame),
            plane: if self.plane == default.plane {
                base.plane
            } else {
                self.plane
            },
            slice: self.slice.or(base.slice),
        }
    }
}

/// The plane a volume is cut in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plane {
    /// Transverse: seen from the feet, anterior up, the patient's right on the image's left.
    #[default]
    Axial,
    /// Seen from the front, superior up, the patient's right on the image's left.
    Coronal,
    /// Seen from the patient's left, superior up, anterior on the image's left.
    Sagittal,
}

impl std::str::FromStr for Plane {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "axial" => Ok(Plane::Axial),
            "coronal" => Ok(Plane::Coronal),
            "sagittal" => Ok(Plane::Sagittal),
            other => Err(Error::InvalidConfig(format!(
                "plane `{other}`: expected axial, coronal or sagittal"
            ))),
        }
    }
}

/// The kind of scan a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanFormat {
    /// A DICOM Part 10 file.
    Dicom,
    /// A NIfTI-1 or NIfTI-2 file (`.nii`, or gzipped `.nii.gz`).
    Nifti,
}

/// What was read from a scan and how it was shown — acquisition facts only, nothing that
/// identifies the patient, the institution or the date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanFacts {
    /// DICOM or NIfTI.
    pub format: ScanFormat,
    /// DICOM modality code (`CT`, `MR`, `CR`, …) when it is one.
    pub modality: Option<String>,
    /// `[rows, columns]` of the image shown.
    pub size: [usize; 2],
    /// Frames (DICOM) or volumes (4-D NIfTI) in the file.
    pub frames: usize,
    /// The one shown, from 0.
    pub frame: usize,
    /// The plane cut from a volume.
    pub plane: Option<Plane>,
    /// Slices along that plane's normal.
    pub slices: Option<usize>,
    /// The one shown, from 0.
    pub slice: Option<usize>,
    /// The window used, as `[black, white]` values (after the modality LUT); `None` for colour
    /// images, which are shown as stored.
    pub window: Option<[f64; 2]>,
    /// Where the window came from: `voi-lut`, `file`, `sigmoid` (the file's window through its
    /// SIGMOID VOI LUT Function; no `[black, white]` then), `full`, `percentiles`, a preset or
    /// `manual`.
    pub window_source: Option<String>,
    /// The smallest and largest finite value, after the modality LUT, of the frame (DICOM) or
    /// the volume (NIfTI): the span a manual window is chosen in. `None` for colour images.
    #[serde(default)]
    pub value_range: Option<[f64; 2]>,
}

/// A scan shown as an image.
#[derive(Debug, Clone)]
pub struct ScanImage {
    /// The 8-bit RGBA image (gray for monochrome scans).
    pub image: RgbaImage,
    /// What was read and how.
    pub facts: ScanFacts,
}

/// Which scan format `bytes` are, by their magic numbers: `DICM` at byte 128 (or at 0, without
/// the preamble), a NIfTI-1 or NIfTI-2 header (`n+1`, `n+2`), or gzip (taken as `.nii.gz`).
/// A DICOM data set without preamble or meta (ACR-NEMA-style exports) has no magic number; it is
/// told by its first element's group, 0008, little endian, or big endian followed by an explicit
/// VR. `None` for anything else.
pub fn sniff(bytes: &[u8]) -> Option<ScanFormat> {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    let explicit_vr = bytes
        .get(4..6)
        .is_some_and(|vr| vr.iter().all(u8::is_ascii_uppercase));
    let data_set = at(0, &[0x08, 0x00]) || (at(0, &[0x00, 0x08]) && explicit_vr);
    if at(128, b"DICM") || at(0, b"DICM") || data_set {
        Some(ScanFormat::Dicom)
    } else if at(344, b"n+1\0") || at(4, b"n+2\0") || at(0, &[0x1f, 0x8b]) {
        Some(ScanFormat::Nifti)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_settings_win_and_defaults_take_the_recorded_ones() {
        let recorded = ScanOptions {
            window: WindowChoice::Preset(Preset::Brain),
            frame: Some(2),
            plane: Plane::Coronal,
            slice: None,
        };
        let chosen = ScanOptions {
            slice: Some(7),
            window: WindowChoice::Full,
            ..ScanOptions::default()
        };
        let merged = chosen.or_defaults_from(recorded);
        assert_eq!(merged.window, WindowChoice::Full);
        assert_eq!(
            (merged.frame, merged.plane, merged.slice),
            (Some(2), Plane::Coronal, Some(7))
        );
        assert_eq!(ScanOptions::default().or_defaults_from(recorded), recorded);
    }

    #[test]
    fn formats_are_told_by_their_magic_numbers() {
        let mut dicom = vec![0u8; 132];
        dicom[128..].copy_from_slice(b"DICM");
        assert_eq!(sniff(&dicom), Some(ScanFormat::Dicom));
        let mut nifti = vec![0u8; 352];
        nifti[344..348].copy_from_slice(b"n+1\0");
        assert_eq!(sniff(&nifti), Some(ScanFormat::Nifti));
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Some(ScanFormat::Nifti));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), None);
        // Data sets without meta: implicit or explicit VR little endian, explicit big endian.
        assert_eq!(
            sniff(b"\x08\x00\x05\x00\x0a\x00\x00\x00"),
            Some(ScanFormat::Dicom)
        );
        assert_eq!(
            sniff(b"\x08\x00\x05\x00CS\x0a\x00"),
            Some(ScanFormat::Dicom)
        );
        assert_eq!(
            sniff(b"\x00\x08\x00\x05CS\x00\x0a"),
            Some(ScanFormat::Dicom)
        );
        assert_eq!(sniff(b"\x00\x08\x00\x05\x00\x00\x00\x0a"), None);
    }
}
