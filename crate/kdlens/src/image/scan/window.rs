//! Intensity windows: which range of a scan's values (Hounsfield units for CT) is spread over the
//! display's black-to-white, as a viewer's window/level does.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A window as DICOM states it (PS3.3 C.11.2.1.2): `center` and `width` in the units of the
/// values after the modality LUT (Hounsfield units for CT).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Window centre (level).
    pub center: f64,
    /// Window width, at least 1.
    pub width: f64,
}

impl Window {
    /// The display ramp of DICOM's LINEAR VOI function: values up to `c − 0.5 − (w − 1)/2` are
    /// black, values above `c − 0.5 + (w − 1)/2` white, linear in between.
    pub fn ramp(&self) -> Ramp {
        let low = self.center - 0.5 - (self.width - 1.0) / 2.0;
        Ramp {
            low,
            high: low + (self.width - 1.0),
        }
    }
}

/// The named windows of CT reading (centre / width in Hounsfield units, as Radiopaedia's
/// "Windowing (CT)" lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Brain: 40 / 80.
    Brain,
    /// Subdural blood: 75 / 215.
    Subdural,
    /// Early stroke: 40 / 40.
    Stroke,
    /// Bone: 600 / 2800.
    Bone,
    /// Lung: −600 / 1500.
    Lung,
    /// Soft tissue: 50 / 350.
    SoftTissue,
}

impl Preset {
    /// Every preset, in the order a user is shown them.
    pub const ALL: [Preset; 6] = [
        Preset::Brain,
        Preset::Subdural,
        Preset::Stroke,
        Preset::Bone,
        Preset::Lung,
        Preset::SoftTissue,
    ];

    /// Its name on the command line and in the page.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Brain => "brain",
            Preset::Subdural => "subdural",
            Preset::Stroke => "stroke",
            Preset::Bone => "bone",
            Preset::Lung => "lung",
            Preset::SoftTissue => "soft-tissue",
        }
    }

    /// Its centre and width.
    pub fn window(self) -> Window {
        let (center, width) = match self {
            Preset::Brain => (40.0, 80.0),
            Preset::Subdural => (75.0, 215.0),
            Preset::Stroke => (40.0, 40.0),
            Preset::Bone => (600.0, 2800.0),
            Preset::Lung => (-600.0, 1500.0),
            Preset::SoftTissue => (50.0, 350.0),
        };
        Window { center, width }
    }
}

/// Which window a scan is shown (and fed to a model) with.
///
/// Written as text everywhere (command line, manifest, page): `auto`, `full`, a preset name
/// (`brain`, `subdural`, `stroke`, `bone`, `lung`, `soft-tissue`), `CENTER,WIDTH` (e.g. `40,80`)
/// or `pLOW,HIGH` percentiles (e.g. `p1,99`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum WindowChoice {
    /// The file's own: a DICOM file's first VOI LUT, else its first window, else its full range;
    /// the 1–99 % percentiles for NIfTI.
    #[default]
    Auto,
    /// From the smallest value to the largest.
    Full,
    /// A named CT window.
    Preset(Preset),
    /// A window given by centre and width.
    Manual(Window),
    /// From the `low` to the `high` percentile of the values (0–100).
    Percentiles {
        /// Lower percentile, black.
        low: f64,
        /// Upper percentile, white.
        high: f64,
    },
}

/// The default percentiles of [`WindowChoice::Auto`] where a file states no window.
pub const AUTO_PERCENTILES: (f64, f64) = (1.0, 99.0);

impl fmt::Display for WindowChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowChoice::Auto => f.write_str("auto"),
            WindowChoice::Full => f.write_str("full"),
            WindowChoice::Preset(p) => f.write_str(p.name()),
            WindowChoice::Manual(w) => write!(f, "{},{}", w.center, w.width),
            WindowChoice::Percentiles { low, high } => write!(f, "p{low},{high}"),
        }
    }
}

impl FromStr for WindowChoice {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidConfig(format!(
                "window `{text}`: {why}; expected auto, full, a preset ({}), CENTER,WIDTH such \
                 as 40,80, or percentiles such as p1,99",
                Preset::ALL.map(Preset::name).join(", ")
            ))
        };
        let text = text.trim();
        if text == "auto" {
            return Ok(WindowChoice::Auto);
        }
        if text == "full" {
            return Ok(WindowChoice::Full);
        }
        if let Some(preset) = Preset::ALL.into_iter().find(|p| p.name() == text) {
            return Ok(WindowChoice::Preset(preset));
        }
        let (percentiles, pair) = match text.strip_prefix('p') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (a, b) = pair.split_once(',').ok_or_else(|| bad("unknown name"))?;
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad("not two numbers"))
        };
        let (a, b) = (number(a)?, number(b)?);
        if percentiles {
            if !(0.0..=100.0).contains(&a) || !(0.0..=100.0).contains(&b) || a >= b {
                return Err(bad("percentiles must satisfy 0 ≤ low < high ≤ 100"));
            }
            Ok(WindowChoice::Percentiles { low: a, high: b })
        } else {
            if b < 1.0 {
                return Err(bad("the width must be at least 1"));
            }
            Ok(WindowChoice::Manual(Window {
                center: a,
                width: b,
            }))
        }
    }
}

impl Serialize for WindowChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WindowChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A linear display ramp: `low` and below → 0, `high` and above → 1 (a step at `low` when the
/// two are equal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ramp {
    /// The value shown black.
    pub low: f64,
    /// The value shown white.
    pub high: f64,
}

impl Ramp {
    /// From the `low`-th to the `high`-th percentile (0–100, nearest rank) of `values`; `None`
    /// for no values.
    pub fn percentiles(values: &[f32], low: f64, high: f64) -> Option<Ramp> {
        if values.is_empty() {
            return None;
        }
        let mut sorted: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_unstable_by(f32::total_cmp);
        let rank = |p: f64| {
            let i = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
            sorted[i.min(sorted.len() - 1)] as f64
        };
        Some(Ramp {
            low: rank(low),
            high: rank(high),
        })
    }

    /// `value` on the display scale, `[0, 1]`.
    pub fn apply(&self, value: f64) -> f64 {
        if value <= self.low {
            0.0
        } else if value >= self.high {
            1.0
        } else {
            (value - self.low) / (self.high - self.low)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_read_back_what_they_write() {
        for text in [
            "auto",
            "full",
            "brain",
            "soft-tissue",
            "40,80",
            "-600,1500",
            "p1,99",
        ] {
            let choice: WindowChoice = text.parse().unwrap();
            assert_eq!(choice.to_string(), text);
        }
        assert_eq!(
            "lung".parse::<WindowChoice>().unwrap(),
            WindowChoice::Preset(Preset::Lung)
        );
        for bad in [
            "", "wide", "40", "40,0", "p50,10", "p-1,99", "a,b", "NaN,80",
        ] {
            let err = bad.parse::<WindowChoice>().unwrap_err().to_string();
            assert!(err.contains("window"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_linear_function_of_dicom() {
        // c = 40, w = 80: black up to c − 0.5 − (w − 1)/2 = 0, white above c − 0.5 + (w − 1)/2
        // = 79, ((x − 39.5)/79 + 0.5) between (PS3.3 C.11.2.1.2.1).
        let ramp = Preset::Brain.window().ramp();
        assert_eq!((ramp.low, ramp.high), (0.0, 79.0));
        assert_eq!(ramp.apply(-1000.0), 0.0);
        assert_eq!(ramp.apply(0.0), 0.0);
        assert!((ramp.apply(39.5) - 0.5).abs() < 1e-12);
        assert!((ramp.apply(59.25) - 0.75).abs() < 1e-12);
        assert_eq!(ramp.apply(79.0), 1.0);
        assert_eq!(ramp.apply(3000.0), 1.0);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f32> = (0..=100).map(|v| v as f32).collect();
        let ramp = Ramp::percentiles(&values, 1.0, 99.0).unwrap();
        assert_eq!((ramp.low, ramp.high), (1.0, 99.0));
        assert!(Ramp::percentiles(&[], 1.0, 99.0).is_none());
        // A flat image: a step, every value black.
        let flat = Ramp::percentiles(&[7.0; 4], 1.0, 99.0).unwrap();
        assert_eq!(flat.apply(7.0), 0.0);
    }
}
