//! Conformance with pydicom and nibabel over whole public corpora: every DICOM file of pydicom's
//! test files and of pydicom-data, every NIfTI file of nibabel's test data (unpacked by
//! `pkg-scripts/fetch-test-scans.sh`), against what the references read
//! (`tests/fixtures/conformance.json`, from `pkg-scripts/make-scan-conformance.py`).
//!
//! The rule: what the reference decodes, kdlens shows the same — size, frames, the value range
//! after the modality LUT within 1e-3 of its span, a strided sample of the values within one 8-bit
//! step, colour within ±1 (±2 for lossy JPEG) — or refuses with a reason listed in
//! [`KNOWN_REFUSALS`]; what the reference cannot decode (or is no image), kdlens refuses. The few
//! files that decode differently are listed with why in [`KNOWN_DIFFERENCES`]. A difference or
//! refusal not listed, and a listed one that no longer happens, fail. The outcome table in the
//! README is this test's output (`KDLENS_UPDATE_README=1` rewrites it).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use kdlens::image::scan::{ScanImage, ScanOptions, Window, WindowChoice, decode_scan};
use serde_json::Value;

mod common;

use common::fetched::{fetched, fixture, floats};

/// Images the reference decodes and kdlens refuses, by file, with words its reason must contain
/// (colour JPEG-LS, which no pure-Rust decoder reads).
const KNOWN_REFUSALS: &[(&str, &str)] = &[
    (
        "pydicom/SC_rgb_jls_lossy_line.dcm",
        "colour JPEG-LS is not supported",
    ),
    (
        "pydicom/SC_rgb_jls_lossy_sample.dcm",
        "colour JPEG-LS is not supported",
    ),
];

/// A file both read whose pictures differ, and why: one of kdlens' errors still open, or a limit
/// of the reference. For the reference's limits, `twin` names a corpus file with the same picture
/// that both read alike, and kdlens' picture of the file must equal its picture of the twin.
struct Difference {
    file: &'static str,
    why: &'static str,
    twin: Option<&'static str>,
}

const KNOWN_DIFFERENCES: &[Difference] = &[
    Difference {
        file: "pydicom/JPEG-lossy.dcm",
        why: "the reference's limit: pylibjpeg refuses its scan header, whose spectral selection \
              ends at 0 where T.81 requires 63 in a sequential scan; libjpeg-turbo-rs reads it as \
              libjpeg-turbo does, and kdlens' picture equals that of JPGExtended.dcm",
        twin: Some("pydicom/JPGExtended.dcm"),
    },
    Difference {
        file: "pydicom-data/emri_small_jpeg_2k_lossless_too_short.dcm",
        why: "the reference's limit: pydicom reads no data set from it (its pixel data lacks the \
              closing sequence delimiter); kdlens' middle frame equals that of \
              emri_small_jpeg_2k_lossless.dcm",
        twin: Some("pydicom-data/emri_small_jpeg_2k_lossless.dcm"),
    },
    Difference {
        file: "pydicom-data/OBXXXX1A_expb.dcm",
        why: "the reference's limit: pydicom's `apply_color_lut` reads the big-endian palettes' \
              16-bit entries as little endian (0x2500 as 0x0025); kdlens' picture equals that of \
              the little-endian OBXXXX1A.dcm",
        twin: Some("pydicom-data/OBXXXX1A.dcm"),
    },
    Difference {
        file: "pydicom-data/OBXXXX1A_expb_2frame.dcm",
        why: "the reference's limit: pydicom's `apply_color_lut` reads the big-endian palettes' \
              16-bit entries as little endian (0x2500 as 0x0025); kdlens' picture equals that of \
              the little-endian OBXXXX1A_2frame.dcm",
        twin: Some("pydicom-data/OBXXXX1A_2frame.dcm"),
    },
];

/// The reference's sampled values; `None` where a value is not finite (NaN in float data).
fn samples(v: &Value) -> Vec<Option<f64>> {
    v.as_array().unwrap().iter().map(Value::as_f64).collect()
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Both decode it, to the same picture.
    Same,
    /// The reference decodes it; kdlens refuses, as listed.
    KnownRefusal(String),
    /// Neither shows it: the reference's reason and kdlens'.
    BothRefuse { reference: String, ours: String },
    /// They differ, as listed, for the reason given there.
    KnownDifference(String),
}

/// kdlens' reading of one corpus file against the reference, with the listed differences;
/// `Err` says what differs.
fn check(dir: &Path, entry: &Value, bytes: &[u8]) -> Result<Outcome, String> {
    let file = entry["file"].as_str().unwrap();
    let outcome = compare(entry, bytes);
    match KNOWN_DIFFERENCES.iter().find(|d| d.file == file) {
        None => outcome,
        Some(difference) => match outcome {
            Err(_) => {
                if let Some(twin) = difference.twin {
                    same_as_twin(bytes, &std::fs::read(dir.join(twin)).unwrap())?;
                }
                Ok(Outcome::KnownDifference(difference.why.to_string()))
            }
            Ok(_) => Err(
                "reads as the reference does but is listed in KNOWN_DIFFERENCES: \
                          remove it there"
                    .into(),
            ),
        },
    }
}

/// That kdlens shows the same picture (pixel for pixel) of a file and of its twin.
fn same_as_twin(bytes: &[u8], twin: &[u8]) -> Result<(), String> {
    let read = |bytes| decode_scan(bytes, &ScanOptions::default()).map_err(|e| e.to_string());
    let (ours, twins) = (read(bytes)?, read(twin)?);
    if ours.image.pixels() != twins.image.pixels() || ours.facts.frame != twins.facts.frame {
        return Err("kdlens' picture differs from its twin's".into());
    }
    Ok(())
}

/// kdlens' reading of one corpus file against the reference; `Err` says what differs.
fn compare(entry: &Value, bytes: &[u8]) -> Result<Outcome, String> {
    let file = entry["file"].as_str().unwrap();
    let ours = decode_scan(bytes, &ScanOptions::default());
    let decoded_by_reference = entry["decoded"].as_bool() == Some(true);
    let known = KNOWN_REFUSALS.iter().find(|(f, _)| *f == file);
    match (decoded_by_reference, ours) {
        (false, Ok(_)) => Err(format!(
            "kdlens shows an image the reference cannot ({})",
            entry["reason"]
        )),
        (false, Err(e)) => Ok(Outcome::BothRefuse {
            reference: entry["reason"].as_str().unwrap().to_string(),
            ours: e.to_string(),
        }),
        (true, Err(e)) => match known {
            Some((_, words)) if e.to_string().contains(words) => {
                Ok(Outcome::KnownRefusal(e.to_string()))
            }
            _ => Err(format!("refused: {e}")),
        },
        (true, Ok(scan)) => {
            if known.is_some() {
                return Err("decoded, but listed in KNOWN_REFUSALS: remove it there".into());
            }
            same_picture(entry, bytes, &scan).map(|()| Outcome::Same)
        }
    }
}

/// Size, frames, value range and the sampled values against the reference's.
fn same_picture(entry: &Value, bytes: &[u8], scan: &ScanImage) -> Result<(), String> {
    let size: Vec<usize> = floats(&entry["size"]).iter().map(|&v| v as usize).collect();
    let frames = [&entry["frames"], &entry["frame"]].map(|v| v.as_u64().unwrap() as usize);
    if scan.facts.size.to_vec() != size || [scan.facts.frames, scan.facts.frame] != frames {
        return Err(format!(
            "size {:?}, frame {} of {}; the reference: {size:?}, frame {} of {}",
            scan.facts.size, scan.facts.frame, scan.facts.frames, frames[1], frames[0]
        ));
    }
    let stride = entry["stride"].as_u64().unwrap() as usize;
    let reference = samples(&entry["values"]);
    if entry["kind"] == "rgb" {
        let lossy = [".4.50", ".4.51", ".4.81", ".4.91"].iter().any(|ts| {
            entry["transfer_syntax"]
                .as_str()
                .unwrap_or("")
                .ends_with(ts)
        });
        let ours: Vec<f64> = rgb_samples(scan, stride, reference.len());
        return within(&ours, &reference, if lossy { 2.0 } else { 1.0 }, "RGB");
    }
    let range = floats(&entry["value_range"]);
    let ours = scan.facts.value_range.ok_or("no value range")?;
    let span = (range[1] - range[0]).abs().max(1.0);
    if (ours[0] - range[0]).abs() > 1e-3 * span || (ours[1] - range[1]).abs() > 1e-3 * span {
        return Err(format!("value range {ours:?}, the reference's {range:?}"));
    }
    sampled_values(entry, bytes, stride, &reference)
}

/// kdlens' RGB samples: every `stride`-th value of the interleaved RGB array, `count` of them.
fn rgb_samples(scan: &ScanImage, stride: usize, count: usize) -> Vec<f64> {
    scan.image
        .pixels()
        .chunks_exact(4)
        .flat_map(|p| p[..3].iter().map(|&v| v as f64))
        .step_by(stride)
        .take(count)
        .collect()
}

/// The sampled values after the modality LUT, seen through a window spanning exactly their
/// range: an error in the values shows at 8-bit resolution of that range.
fn sampled_values(
    entry: &Value,
    bytes: &[u8],
    stride: usize,
    reference: &[Option<f64>],
) -> Result<(), String> {
    let (low, high) = reference
        .iter()
        .flatten()
        .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    if high <= low {
        return Ok(());
    }
    let options = ScanOptions {
        window: WindowChoice::Manual(Window {
            center: (low + high) / 2.0 + 0.5,
            width: high - low + 1.0,
        }),
        ..ScanOptions::default()
    };
    let scan = decode_scan(bytes, &options).map_err(|e| format!("with a window: {e}"))?;
    let invert = entry["photometric"] == "MONOCHROME1";
    let expected: Vec<Option<f64>> = reference
        .iter()
        .map(|v| {
            v.map(|v| {
                let shade = 255.0 * (v - low) / (high - low);
                if invert { 255.0 - shade } else { shade }
            })
        })
        .collect();
    let ours: Vec<f64> = scan
        .image
        .pixels()
        .chunks_exact(4)
        .step_by(stride)
        .take(reference.len())
        .map(|p| p[0] as f64)
        .collect();
    within(&ours, &expected, 1.0 + 1e-6, "values")
}

/// Every sampled value within `tolerance` of the reference's (its non-finite ones skipped).
fn within(
    ours: &[f64],
    reference: &[Option<f64>],
    tolerance: f64,
    what: &str,
) -> Result<(), String> {
    if ours.len() != reference.len() {
        return Err(format!(
            "{} {what} sampled, the reference {}",
            ours.len(),
            reference.len()
        ));
    }
    let worst = ours
        .iter()
        .zip(reference)
        .filter_map(|(a, b)| b.map(|b| (a - b).abs()))
        .fold(0.0, f64::max);
    if worst > tolerance {
        return Err(format!("{what} differ by up to {worst:.1} of 255"));
    }
    Ok(())
}

/// The README's table of outcomes: counts, then every refusal with its reason.
fn outcome_table(outcomes: &BTreeMap<String, Outcome>, versions: &Value) -> String {
    let count = |f: fn(&Outcome) -> bool| outcomes.values().filter(|o| f(o)).count();
    let mut md = format!(
        "| {} files of the corpora | count |\n|---|---|\n\
         | decoded by both, the same picture | {} |\n\
         | decoded by the reference, refused by kdlens (listed below) | {} |\n\
         | refused by both (no image, or not decodable) | {} |\n\
         | decoded differently (listed below, with why) | {} |\n\n\
         References: pydicom {} (with pylibjpeg), nibabel {}.\n\n\
         | file | kdlens refuses it because |\n|---|---|\n",
        outcomes.len(),
        count(|o| *o == Outcome::Same),
        count(|o| matches!(o, Outcome::KnownRefusal(_))),
        count(|o| matches!(o, Outcome::BothRefuse { .. })),
        count(|o| matches!(o, Outcome::KnownDifference(_))),
        versions["pydicom"].as_str().unwrap_or("?"),
        versions["nibabel"].as_str().unwrap_or("?"),
    );
    for (file, outcome) in outcomes {
        if let Outcome::KnownRefusal(reason) = outcome {
            md.push_str(&format!("| `{file}` | {} |\n", reason.replace('|', "\\|")));
        }
    }
    md.push_str("\n| file | differs because |\n|---|---|\n");
    for (file, outcome) in outcomes {
        if let Outcome::KnownDifference(why) = outcome {
            md.push_str(&format!("| `{file}` | {why} |\n"));
        }
    }
    md
}

/// Checks (or, with `KDLENS_UPDATE_README=1`, rewrites) the README's outcome table.
fn check_readme(table: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (start, end) = ("<!-- conformance:start -->\n", "<!-- conformance:end -->");
    let from = readme
        .find(start)
        .expect("the README's conformance markers")
        + start.len();
    let to = readme.find(end).expect("the README's conformance markers");
    if readme[from..to] == *table {
        return;
    }
    if std::env::var_os("KDLENS_UPDATE_README").is_some() {
        let updated = format!("{}{table}{}", &readme[..from], &readme[to..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "the README's conformance table is out of date; run this test with \
         KDLENS_UPDATE_README=1 to rewrite it. Now:\n{table}"
    );
}

#[test]
fn every_corpus_file_reads_as_the_references_read_it() {
    let Some(dir) = fetched("corpus", "complete") else {
        return;
    };
    let fixture = fixture("conformance.json");
    let mut outcomes = BTreeMap::new();
    let mut failures = Vec::new();
    for entry in fixture["files"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        match check(&dir, entry, &bytes) {
            Ok(outcome) => {
                outcomes.insert(file.to_string(), outcome);
            }
            Err(why) => failures.push(format!("{file}: {why}")),
        }
    }
    let listed = KNOWN_REFUSALS.iter().map(|(file, _)| file);
    for file in listed.chain(KNOWN_DIFFERENCES.iter().map(|d| &d.file)) {
        if !outcomes.contains_key(*file) && !failures.iter().any(|f| f.starts_with(file)) {
            failures.push(format!("{file}: listed but not in the corpus"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files differ from the references:\n{}",
        failures.len(),
        fixture["files"].as_array().unwrap().len(),
        failures.join("\n")
    );
    check_readme(&outcome_table(&outcomes, &fixture["versions"]));
}
