//! Opening a DICOM file: a Part 10 file (preamble, `DICM`, file meta group), or a data set on its
//! own — an ACR-NEMA-style export without preamble or meta, or a Part 10 file whose meta group
//! names no transfer syntax — read in the encoding its first element header shows, as pydicom
//! reads such files with `force=True`. Every stated length is checked before dicom-rs reads.

use dicom_core::VR;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::dicom_lengths::{check_data_set, meta_group};
use crate::{Error, Result};

const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
/// The Explicit VR Big Endian transfer syntax (retired, still found in old archives).
pub(super) const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// The DICOM object in `bytes`, its meta information made up for a data set without one (the
/// transfer syntax it was read in; Secondary Capture unless the data set names its SOP class).
/// A data set stated as explicit VR but written in implicit VR is read as implicit VR.
pub(super) fn open(bytes: &[u8]) -> Result<DefaultDicomObject> {
    match meta_group(bytes)? {
        Some((at, uid)) if implicit_though_explicit(&bytes[at..], &uid) => {
            read_data_set(&bytes[at..], IMPLICIT_VR_LITTLE_ENDIAN, &uid)
        }
        Some((at, uid)) if !uid.is_empty() => {
            check_data_set(&bytes[at..], &uid)?;
            OpenFileOptions::new()
                .from_reader(bytes)
                .map_err(|e| unreadable(&kind_of(&e)))
        }
        Some((at, _)) => data_set_alone(&bytes[at..]),
        None => data_set_alone(bytes),
    }
}

/// Whether a data set whose transfer syntax `uid` says explicit VR little endian (every one but
/// implicit VR, big endian and the deflated ones) starts with an element without an explicit VR:
/// written in implicit VR by mistake, as some writers do; pydicom then reads it as implicit VR.
fn implicit_though_explicit(data_set: &[u8], uid: &str) -> bool {
    let stated_explicit_little = !uid.is_empty()
        && ![IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN].contains(&uid)
        && !super::dicom_lengths::is_deflated(uid);
    stated_explicit_little && encoding_of(data_set) == Some(IMPLICIT_VR_LITTLE_ENDIAN)
}

/// A data set without (usable) file meta information.
fn data_set_alone(bytes: &[u8]) -> Result<DefaultDicomObject> {
    let uid = encoding_of(bytes)
        .ok_or_else(|| unreadable("no file meta information, and no data set either"))?;
    read_data_set(bytes, uid, uid)
}

/// The data set in `bytes`, its elements read in transfer syntax `read_in`, its pixel data
/// encoded as transfer syntax `pixels_in` says.
fn read_data_set(bytes: &[u8], read_in: &str, pixels_in: &str) -> Result<DefaultDicomObject> {
    check_data_set(bytes, read_in)?;
    let syntax = TransferSyntaxRegistry
        .get(read_in)
        .ok_or_else(|| unreadable("the transfer syntax is not known"))?;
    let object = InMemDicomObject::read_dataset_with_ts(bytes, syntax)
        .map_err(|_| unreadable("the data set cannot be parsed"))?;
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(pixels_in)
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
        .media_storage_sop_instance_uid("2.25.0");
    object
        .with_meta(meta)
        .map_err(|_| unreadable("the data set's SOP class or instance UID is malformed"))
}

/// The transfer syntax of a data set without meta, from its first element, which must be of group
/// 0008 (a data set's first group in practice): an explicit VR after the tag means explicit VR,
/// little or big endian as the group number reads; otherwise implicit VR little endian.
fn encoding_of(bytes: &[u8]) -> Option<&'static str> {
    let explicit = bytes
        .get(4..6)
        .and_then(|b| VR::from_binary([b[0], b[1]]))
        .is_some();
    match (bytes.get(..2)?, explicit) {
        ([0x08, 0x00], true) => Some(EXPLICIT_VR_LITTLE_ENDIAN),
        ([0x08, 0x00], false) => Some(IMPLICIT_VR_LITTLE_ENDIAN),
        ([0x00, 0x08], true) => Some(EXPLICIT_VR_BIG_ENDIAN),
        _ => None,
    }
}

fn unreadable(why: &str) -> Error {
    Error::Decode(format!("not a readable DICOM file ({why})"))
}

/// What kind of read error this was, without the values it may quote.
fn kind_of(error: &dicom_object::ReadError) -> String {
    use dicom_object::ReadError as E;
    match error {
        E::ReadPreambleBytes { .. } => "it ends before the preamble does".into(),
        E::ParseMetaDataSet { .. } => "no valid file meta information".into(),
        E::ReadUnrecognizedTransferSyntax { uid, .. } => {
            format!("unknown transfer syntax {}", printable(uid))
        }
        E::ReadUnsupportedTransferSyntax { uid, .. }
        | E::ReadUnsupportedTransferSyntaxWithSuggestion { uid, .. } => {
            format!("unsupported transfer syntax {}", printable(uid))
        }
        _ => "the data set cannot be parsed".into(),
    }
}

/// A UID shown only if it is one (digits and dots).
pub(super) fn printable(uid: &str) -> String {
    let uid = uid.trim_end_matches(['\0', ' ']);
    if !uid.is_empty() && uid.len() <= 64 && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        uid.to_string()
    } else {
        "(not a UID)".into()
    }
}

#[cfg(test)]
mod tests {
    use dicom_core::{DataElement, PrimitiveValue};
    use dicom_dictionary_std::tags;

    use super::*;

    /// A 1×2 MONOCHROME2 8-bit image's data set, written in `uid` without preamble or meta.
    fn data_set(uid: &str) -> Vec<u8> {
        let mut object = super::super::test_objects::monochrome(1, 2, 8);
        object.put(DataElement::new(
            tags::MODALITY,
            VR::CS,
            PrimitiveValue::from("OT"),
        ));
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::from(vec![10u8, 200]),
        ));
        let syntax = TransferSyntaxRegistry.get(uid).unwrap();
        let mut bytes = Vec::new();
        object.write_dataset_with_ts(&mut bytes, syntax).unwrap();
        bytes
    }

    #[test]
    fn data_sets_without_meta_are_read_in_the_encoding_they_show() {
        for uid in [
            IMPLICIT_VR_LITTLE_ENDIAN,
            EXPLICIT_VR_LITTLE_ENDIAN,
            EXPLICIT_VR_BIG_ENDIAN,
        ] {
            let bytes = data_set(uid);
            assert_eq!(encoding_of(&bytes), Some(uid));
            let object = open(&bytes).unwrap();
            assert_eq!(object.meta().transfer_syntax().trim_end_matches('\0'), uid);
            let pixels = object
                .element(tags::PIXEL_DATA)
                .unwrap()
                .to_bytes()
                .unwrap();
            assert_eq!(&pixels[..], [10, 200], "{uid}");
        }
    }

    #[test]
    fn a_data_set_written_implicit_though_stated_explicit_is_read_as_implicit() {
        let meta = FileMetaTableBuilder::new()
            .transfer_syntax(EXPLICIT_VR_LITTLE_ENDIAN)
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
            .media_storage_sop_instance_uid("2.25.1")
            .build()
            .unwrap();
        let mut bytes = vec![0u8; 128];
        bytes.extend_from_slice(b"DICM");
        meta.write(&mut bytes).unwrap();
        bytes.extend(data_set(IMPLICIT_VR_LITTLE_ENDIAN));
        let object = open(&bytes).unwrap();
        let pixels = object
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap();
        assert_eq!(&pixels[..], [10, 200]);
        assert_eq!(
            object.meta().transfer_syntax().trim_end_matches('\0'),
            EXPLICIT_VR_LITTLE_ENDIAN
        );
    }

    #[test]
    fn other_bytes_are_no_data_set() {
        assert_eq!(encoding_of(b"\x89PNG\r\n\x1a\n"), None);
        assert_eq!(encoding_of(&[0x08]), None);
        let error = open(b"hello, world").unwrap_err().to_string();
        assert!(error.contains("no file meta information"), "{error}");
    }
}
