//! No patient data in any output: DICOM files carrying made-up identifying values in the
//! identifying attributes of the PS3.15 basic de-identification profile go through
//! `train-teacher`, `distill`, `evaluate`, `explain` (every method, faithfulness), `audit` and
//! `export`, one of them through a decoding error; every file those commands write, and
//! everything they print, is searched for each value. The page's browser test searches its
//! exports for the same values, in files that `write_patient_files` writes. And every file of the
//! public scan corpora goes through the decoder that all of those share: what it returns (the
//! scan's facts, or its error) holds none of the file's identifying values.

mod common;

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use common::files_under;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR, header::Header};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use kdlens::image::scan::{ScanOptions, decode_scan};

/// Identifying attributes of the basic profile (PS3.15 Table E.1-1) with a made-up value each:
/// text that appears nowhere else, dates and times, and UIDs under an unregistered root. Some of
/// the attributes are retired in the standard's dictionary but still in the profile's table.
#[allow(deprecated)]
fn identifying(n: usize) -> Vec<(Tag, VR, String)> {
    let text = |what: &str| format!("Zq{what}{n}Xv");
    vec![
        (tags::PATIENT_NAME, VR::PN, format!("Qwertyson{n}^Jane")),
        (tags::PATIENT_ID, VR::LO, text("PatId")),
        (tags::ISSUER_OF_PATIENT_ID, VR::LO, text("Issuer")),
        (
            tags::PATIENT_BIRTH_DATE,
            VR::DA,
            format!("1931020{}", n % 10),
        ),
        (
            tags::PATIENT_BIRTH_TIME,
            VR::TM,
            format!("0711{:02}", 10 + n % 50),
        ),
        (tags::PATIENT_SEX, VR::CS, "O".into()),
        (tags::PATIENT_AGE, VR::AS, format!("0{:02}Y", 40 + n % 50)),
        (tags::PATIENT_SIZE, VR::DS, format!("1.{:03}", 700 + n)),
        (tags::PATIENT_WEIGHT, VR::DS, format!("{}.25", 60 + n)),
        (tags::PATIENT_ADDRESS, VR::LO, text("Street")),
        (
            tags::PATIENT_TELEPHONE_NUMBERS,
            VR::SH,
            format!("+4479{:05}", 31_000 + n),
        ),
        (tags::PATIENT_MOTHER_BIRTH_NAME, VR::PN, text("Mother")),
        (tags::OTHER_PATIENT_I_DS, VR::LO, text("OtherId")),
        (tags::OTHER_PATIENT_NAMES, VR::PN, text("Alias")),
        (tags::MEDICAL_RECORD_LOCATOR, VR::LO, text("Record")),
        (tags::ETHNIC_GROUP, VR::SH, text("Ethnic")),
        (tags::OCCUPATION, VR::SH, text("Job")),
        (tags::ADDITIONAL_PATIENT_HISTORY, VR::LT, text("History")),
        (tags::PATIENT_COMMENTS, VR::LT, text("PatComment")),
        (tags::INSTITUTION_NAME, VR::LO, text("Hospital")),
        (tags::INSTITUTION_ADDRESS, VR::ST, text("HospAddr")),
        (tags::INSTITUTIONAL_DEPARTMENT_NAME, VR::LO, text("Dept")),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN, text("Referrer")),
        (tags::PERFORMING_PHYSICIAN_NAME, VR::PN, text("Performer")),
        (
            tags::NAME_OF_PHYSICIANS_READING_STUDY,
            VR::PN,
            text("Reader"),
        ),
        (tags::OPERATORS_NAME, VR::PN, text("Operator")),
        (tags::REQUESTING_PHYSICIAN, VR::PN, text("Requester")),
        (tags::STATION_NAME, VR::SH, text("Station")),
        (tags::DEVICE_SERIAL_NUMBER, VR::LO, text("Serial")),
        (tags::ACCESSION_NUMBER, VR::SH, text("Accession")),
        (tags::STUDY_ID, VR::SH, text("Study")),
        (tags::STUDY_DESCRIPTION, VR::LO, text("StudyDesc")),
        (tags::SERIES_DESCRIPTION, VR::LO, text("SeriesDesc")),
        (tags::IMAGE_COMMENTS, VR::LT, text("ImgComment")),
        (tags::STUDY_DATE, VR::DA, format!("2019031{}", n % 10)),
        (tags::SERIES_DATE, VR::DA, format!("2019041{}", n % 10)),
        (tags::ACQUISITION_DATE, VR::DA, format!("2019051{}", n % 10)),
        (tags::CONTENT_DATE, VR::DA, format!("2019061{}", n % 10)),
        (tags::STUDY_TIME, VR::TM, format!("1337{:02}", n % 60)),
        (tags::STUDY_INSTANCE_UID, VR::UI, format!("2.25.9917{n}01")),
        (tags::SERIES_INSTANCE_UID, VR::UI, format!("2.25.9917{n}02")),
        (tags::SOP_INSTANCE_UID, VR::UI, format!("2.25.9917{n}03")),
        (
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            format!("2.25.9917{n}04"),
        ),
    ]
}

/// The identifying values of `identifying(n)` that a search can find: all but the
/// single-character codes (sex).
fn searchable(n: usize) -> Vec<(Tag, String)> {
    identifying(n)
        .into_iter()
        .filter(|(_, _, value)| value.len() >= 4)
        .map(|(tag, _, value)| (tag, value))
        .collect()
}

/// A 24×24 12-bit CT frame carrying `identifying(n)`; `bits` allocated (24 makes it unreadable).
fn write_dicom(path: &Path, n: usize, bits: u16) {
    let mut object = InMemDicomObject::new_empty();
    for (tag, vr, value) in identifying(n) {
        object.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    }
    let put_u16 = |object: &mut InMemDicomObject, tag, v: u16| {
        object.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
    };
    put_u16(&mut object, tags::ROWS, 24);
    put_u16(&mut object, tags::COLUMNS, 24);
    put_u16(&mut object, tags::SAMPLES_PER_PIXEL, 1);
    put_u16(&mut object, tags::BITS_ALLOCATED, bits);
    put_u16(&mut object, tags::BITS_STORED, 12);
    put_u16(&mut object, tags::HIGH_BIT, 11);
    put_u16(&mut object, tags::PIXEL_REPRESENTATION, 0);
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    object.put(text(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    ));
    object.put(text(tags::MODALITY, VR::CS, "CT"));
    object.put(text(tags::RESCALE_INTERCEPT, VR::DS, "-1024"));
    object.put(text(tags::RESCALE_SLOPE, VR::DS, "1"));
    object.put(text(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE));
    let pixels: Vec<u8> = (0..24 * 24)
        .flat_map(|i| (((i * 37 + n * 101) % 4096) as u16).to_le_bytes())
        .collect();
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::from(pixels),
    ));
    let file = object
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
                .media_storage_sop_instance_uid(format!("2.25.9917{n}03")),
        )
        .unwrap();
    file.write_to_file(path).unwrap();
}

/// Writes the identifying DICOM files of the page's patient-data test (`tests/scans.test.js`)
/// into `$KDLENS_PATIENT_DIR`: `patient{n}.dcm` and `identifying.json`, the values to search
/// for (`{ "patient1.dcm": ["Qwertyson1^Jane", …] }`). Run by `pkg-scripts/test.sh`.
#[test]
#[ignore = "writes the browser test's input files; pkg-scripts/test.sh runs it"]
fn write_patient_files() {
    let dir = PathBuf::from(std::env::var_os("KDLENS_PATIENT_DIR").expect("KDLENS_PATIENT_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut values = serde_json::Map::new();
    for n in [1, 2] {
        let name = format!("patient{n}.dcm");
        write_dicom(&dir.join(&name), n, 16);
        let values_of_n: Vec<String> = searchable(n).into_iter().map(|(_, v)| v).collect();
        values.insert(name, values_of_n.into());
    }
    let json = serde_json::to_vec_pretty(&values).unwrap();
    std::fs::write(dir.join("identifying.json"), json).unwrap();
}

/// Runs `kdlens` with `args`; returns its exit success and everything it printed.
fn kdlens(args: &[&str]) -> (bool, String) {
    let out = common::run(args);
    (out.status.success(), common::text(&out))
}

/// The words of a file or text: maximal runs of letters, digits and `.^+_`, the characters of the
/// made-up values (so that a made-up date or weight is not "found" among the digits of a float
/// in a JSON report, and a file is read once however many values are looked for).
fn words(bytes: &[u8]) -> HashSet<&[u8]> {
    bytes
        .split(|b| !(b.is_ascii_alphanumeric() || b".^+_".contains(b)))
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn no_identifying_value_reaches_any_output() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut n = 0;
    let mut files = Vec::new();
    for (split, count) in [("Training", 4), ("Testing", 2)] {
        for class in ["benign", "malignant"] {
            let dir = data.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for _ in 0..count {
                n += 1;
                let path = dir.join(format!("scan{n}.dcm"));
                write_dicom(&path, n, 16);
                files.push((path, n));
            }
        }
    }
    let unreadable = tmp.path().join("unreadable.dcm");
    write_dicom(&unreadable, 0, 24);
    let runs = tmp.path().join("runs");
    let run = |name: &str| runs.join(name).to_string_lossy().into_owned();
    let data_arg = data.to_string_lossy().into_owned();
    let model = runs
        .join("train/teacher.kdlens")
        .to_string_lossy()
        .into_owned();
    let first = files[0].0.to_string_lossy().into_owned();
    let last = files[n - 1].0.to_string_lossy().into_owned();
    let bad = unreadable.to_string_lossy().into_owned();

    let mut printed = String::new();
    let mut kdlens_ok = |args: &[&str]| {
        let (ok, text) = kdlens(args);
        assert!(ok, "{args:?}: {text}");
        printed += &text;
    };
    kdlens_ok(&[
        "--run-dir",
        &run("train"),
        "train-teacher",
        "--data",
        &data_arg,
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--image-size",
        "32",
        "--replicas",
        "1",
        "--window",
        "p2,98",
    ]);
    kdlens_ok(&[
        "--run-dir",
        &run("evaluate"),
        "evaluate",
        "--data",
        &data_arg,
        "--model",
        &model,
    ]);
    kdlens_ok(&[
        "--run-dir",
        &run("explain"),
        "explain",
        &first,
        &last,
        "--model",
        &model,
        "--method",
        "grad-cam,layer-cam,integrated-gradients,shap",
        "--ig-steps",
        "4",
        "--shap-samples",
        "4",
        "--faithfulness",
        "--faithfulness-steps",
        "4",
        "--window",
        "brain",
    ]);
    kdlens_ok(&[
        "--run-dir",
        &run("distill"),
        "distill",
        "--teacher",
        &model,
        "--data",
        &data_arg,
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--replicas",
        "1",
    ]);
    let student = files_under(&runs.join("distill"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "kdlens"))
        .expect("the distilled student")
        .to_string_lossy()
        .into_owned();
    kdlens_ok(&[
        "--run-dir",
        &run("audit"),
        "audit",
        "--teacher",
        &model,
        "--student",
        &student,
        "--data",
        &data_arg,
        "--method",
        "grad-cam",
        "--images",
        "2",
        "--sanity-images",
        "1",
        "--faithfulness-steps",
        "4",
        "--ig-steps",
        "4",
    ]);
    kdlens_ok(&[
        "--run-dir",
        &run("export"),
        "export",
        "--model",
        &student,
        "--out",
        &run("export/out"),
    ]);
    let (ok, text) = kdlens(&[
        "--run-dir",
        &run("explain-bad"),
        "explain",
        &bad,
        "--model",
        &model,
    ]);
    assert!(
        !ok && text.contains("unreadable.dcm") && text.contains("24-bit"),
        "{text}"
    );
    printed += &text;

    // The model records the window it was trained with; the report says how the scan was shown
    // and nothing else about it.
    let bundle = std::fs::read(&model).unwrap();
    let needle = b"\"window\": \"p2,98\"";
    let recorded = bundle.windows(needle.len()).any(|w| w == needle);
    assert!(recorded, "the window is in the manifest");
    let report = files_under(&runs.join("explain"))
        .into_iter()
        .find(|p| p.ends_with("scan1/explanation.json"))
        .expect("scan1's report");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    let scan = &report["image"]["scan"];
    assert_eq!(scan["modality"], "CT");
    assert_eq!(scan["window_source"], "brain");
    assert_eq!(scan["size"], serde_json::json!([24, 24]));

    let outputs: Vec<(PathBuf, Vec<u8>)> = files_under(&runs)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    assert!(
        outputs.len() > 10,
        "the commands wrote {} files",
        outputs.len()
    );
    let output_words: Vec<(&PathBuf, HashSet<&[u8]>)> =
        outputs.iter().map(|(p, b)| (p, words(b))).collect();
    let printed_words = words(printed.as_bytes());
    for (input, n) in files.iter().chain([&(unreadable.clone(), 0)]) {
        let input = std::fs::read(input).unwrap();
        let input_words = words(&input);
        for (tag, value) in searchable(*n) {
            let value = value.as_bytes();
            // The search finds the value where it is: in the input file.
            assert!(input_words.contains(value), "{tag} not found in its input");
            assert!(!printed_words.contains(value), "{tag} printed");
            for (path, words) in &output_words {
                assert!(!words.contains(value), "{tag} in {}", path.display());
                let name = path.strip_prefix(&runs).unwrap().to_string_lossy();
                assert!(
                    !self::words(name.as_bytes()).contains(value),
                    "{tag} in a file name"
                );
            }
        }
    }
}

/// The identifying values a real file holds: the text of every attribute of [`identifying`]'s
/// list and of every person name, anywhere in the data set (sequences included), each value of a
/// multi-valued attribute and each part of a name of 4 characters or more.
fn identifying_values(object: &InMemDicomObject, out: &mut Vec<String>) {
    let profile: Vec<Tag> = identifying(0).into_iter().map(|(tag, _, _)| tag).collect();
    for element in object {
        if let Some(items) = element.items() {
            for item in items {
                identifying_values(item, out);
            }
            continue;
        }
        if !(profile.contains(&element.tag()) || element.vr() == VR::PN) {
            continue;
        }
        let Ok(text) = element.to_str() else { continue };
        for value in text.split('\\') {
            let value = value.trim_matches([' ', '\0']);
            let parts = std::iter::once(value).chain(value.split('^'));
            out.extend(parts.filter(|p| p.len() >= 4).map(str::to_string));
        }
    }
}

/// A corpus file's data set as dicom-rs reads it: a Part 10 file, or a data set alone in implicit
/// or explicit VR little endian; `None` for anything else (NIfTI, text).
fn data_set_of(bytes: &[u8]) -> Option<InMemDicomObject> {
    if let Ok(file) = OpenFileOptions::new().from_reader(bytes) {
        return Some(file.into_inner());
    }
    ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]
        .into_iter()
        .filter_map(|uid| TransferSyntaxRegistry.get(uid))
        .find_map(|ts| InMemDicomObject::read_dataset_with_ts(bytes, ts).ok())
}

#[test]
fn no_identifying_value_of_the_corpora_reaches_the_decoders_output() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/.cache/corpus");
    if !corpus.join("complete").exists() {
        eprintln!("skipped: run pkg-scripts/fetch-test-scans.sh for the scan corpora");
        return;
    }
    let (mut files, mut with_values) = (0, 0);
    for path in files_under(&corpus) {
        if path.ends_with("complete") {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        let mut values = Vec::new();
        if let Some(object) = data_set_of(&bytes) {
            identifying_values(&object, &mut values);
        }
        with_values += usize::from(!values.is_empty());
        let output = match decode_scan(&bytes, &ScanOptions::default()) {
            Ok(scan) => serde_json::to_string(&scan.facts).unwrap(),
            Err(error) => error.to_string(),
        };
        let output_words = words(output.as_bytes());
        for value in values {
            assert!(
                !output_words.contains(value.as_bytes()),
                "{}: an identifying value in {output}",
                path.display()
            );
        }
    }
    assert!(files >= 240, "{files} corpus files");
    // Most of the corpora's files name a patient, an institution or a physician.
    assert!(
        with_values > files / 2,
        "{with_values} of {files} files hold identifying values"
    );
}
