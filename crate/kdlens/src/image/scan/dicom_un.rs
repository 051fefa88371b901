//! Attributes stored with the value representation `UN` (unknown) read as the one their tag has
//! in the standard's dictionary, as pydicom does by default (`replace_un_with_known_vr`): some
//! anonymisers and archives write known attributes of explicit-VR files as `UN`, and read as raw
//! bytes a Rescale Slope of `"1 "` would be taken as its first byte, 49.

use dicom_core::{
    DataDictionary, Tag, VR,
    dictionary::{DataDictionaryEntry, VirtualVr},
    header::Header as _,
    smallvec::SmallVec,
    value::PrimitiveValue,
};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::{InMemDicomObject, mem::InMemElement};

use crate::{Error, Result};

/// Rewrites every top-level `UN` element whose tag the standard's dictionary knows, with the
/// value representation it gives (US or SS for pixel-valued ones, by Pixel Representation).
/// `big_endian`: the byte order of the file's transfer syntax. Elements the dictionary does not
/// know (private ones), sequences and byte strings stay as they are.
pub(super) fn read_known_vrs(object: &mut InMemDicomObject, big_endian: bool) -> Result<()> {
    // Pixel-valued attributes (US or SS) need Pixel Representation, itself possibly UN: two passes.
    for pixel_valued in [false, true] {
        let signed = object
            .get(tags::PIXEL_REPRESENTATION)
            .and_then(|e| e.to_int::<u16>().ok())
            == Some(1);
        let mut known = Vec::new();
        for element in object.iter().filter(|e| e.vr() == VR::UN) {
            let tag = element.tag();
            let (Some(vr), Ok(bytes)) =
                (dictionary_vr(tag, pixel_valued, signed), element.to_bytes())
            else {
                continue;
            };
            let value = value_as(vr, &bytes, big_endian).ok_or_else(|| {
                Error::Decode(format!(
                    "the attribute {tag} is stored as UN with a length that fits no value of \
                     its VR"
                ))
            })?;
            known.push(InMemElement::new(tag, vr, value));
        }
        for element in known {
            object.put(element);
        }
    }
    Ok(())
}

/// The VR the standard's dictionary gives `tag`: in the first pass those it states exactly, in
/// the second (`pixel_valued`) the US-or-SS ones, SS when the pixels are `signed`.
/// Only VRs read as text or numbers: sequences and byte strings (OB, OW, …) are left as `UN`.
fn dictionary_vr(tag: Tag, pixel_valued: bool, signed: bool) -> Option<VR> {
    use VR::*;
    match StandardDataDictionary.by_tag(tag)?.vr() {
        VirtualVr::Exact(
            vr @ (AE | AS | CS | DA | DS | DT | IS | LO | PN | SH | TM | UC | UI | LT | ST | UR
            | UT | US | SS | UL | SL | UV | SV | FL | FD | AT),
        ) if !pixel_valued => Some(vr),
        VirtualVr::Xs if pixel_valued => Some(if signed { SS } else { US }),
        _ => None,
    }
}

/// `bytes` read as a value of `vr` (one of [`dictionary_vr`]'s), `None` when their length fits no
/// such value.
fn value_as(vr: VR, bytes: &[u8], big_endian: bool) -> Option<PrimitiveValue> {
    use VR::*;
    Some(match vr {
        AE | AS | CS | DA | DS | DT | IS | LO | PN | SH | TM | UC | UI => {
            let text = String::from_utf8_lossy(bytes);
            PrimitiveValue::Strs(
                text.split('\\')
                    .map(|s| s.trim_matches([' ', '\0']).to_string())
                    .collect(),
            )
        }
        LT | ST | UR | UT => PrimitiveValue::Str(
            String::from_utf8_lossy(bytes)
                .trim_end_matches([' ', '\0'])
                .into(),
        ),
        US => PrimitiveValue::U16(words(
            bytes,
            big_endian,
            u16::from_le_bytes,
            u16::from_be_bytes,
        )?),
        SS => PrimitiveValue::I16(words(
            bytes,
            big_endian,
            i16::from_le_bytes,
            i16::from_be_bytes,
        )?),
        UL => PrimitiveValue::U32(words(
            bytes,
            big_endian,
            u32::from_le_bytes,
            u32::from_be_bytes,
        )?),
        SL => PrimitiveValue::I32(words(
            bytes,
            big_endian,
            i32::from_le_bytes,
            i32::from_be_bytes,
        )?),
        UV => PrimitiveValue::U64(words(
            bytes,
            big_endian,
            u64::from_le_bytes,
            u64::from_be_bytes,
        )?),
        SV => PrimitiveValue::I64(words(
            bytes,
            big_endian,
            i64::from_le_bytes,
            i64::from_be_bytes,
        )?),
        FL => PrimitiveValue::F32(words(
            bytes,
            big_endian,
            f32::from_le_bytes,
            f32::from_be_bytes,
        )?),
        FD => PrimitiveValue::F64(words(
            bytes,
            big_endian,
            f64::from_le_bytes,
            f64::from_be_bytes,
        )?),
        AT => {
            let halves: SmallVec<[u16; 2]> =
                words(bytes, big_endian, u16::from_le_bytes, u16::from_be_bytes)?;
            if !halves.len().is_multiple_of(2) {
                return None;
            }
            PrimitiveValue::Tags(halves.chunks(2).map(|p| Tag(p[0], p[1])).collect())
        }
        _ => return None,
    })
}

/// `bytes` as numbers of `N` bytes each, in the file's byte order; `None` if the length is not a
/// multiple of `N`.
fn words<T, const N: usize>(
    bytes: &[u8],
    big_endian: bool,
    little: fn([u8; N]) -> T,
    big: fn([u8; N]) -> T,
) -> Option<SmallVec<[T; 2]>> {
    if !bytes.len().is_multiple_of(N) {
        return None;
    }
    let read = if big_endian { big } else { little };
    Some(
        bytes
            .chunks_exact(N)
            .map(|c| read(c.try_into().expect("chunks of N bytes")))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(tag: Tag, bytes: &[u8]) -> InMemElement {
        InMemElement::new(
            tag,
            VR::UN,
            PrimitiveValue::U8(bytes.iter().copied().collect()),
        )
    }

    #[test]
    fn known_attributes_stored_as_un_read_as_their_vr() {
        let mut object = InMemDicomObject::from_element_iter([
            un(tags::RESCALE_SLOPE, b"1 "),
            un(tags::RESCALE_INTERCEPT, b"-1024 "),
            un(tags::MODALITY, b"CT"),
            un(tags::ROWS, &[0, 2]),
            un(tags::PIXEL_REPRESENTATION, &[1, 0]),
            un(tags::SMALLEST_IMAGE_PIXEL_VALUE, &[0x00, 0xfc]),
            un(Tag(0x0009, 0x1001), b"private"),
        ]);
        read_known_vrs(&mut object, false).unwrap();
        let get = |tag| object.get(tag).unwrap();
        assert_eq!(get(tags::RESCALE_SLOPE).vr(), VR::DS);
        assert_eq!(get(tags::RESCALE_SLOPE).to_float64().unwrap(), 1.0);
        assert_eq!(get(tags::RESCALE_INTERCEPT).to_float64().unwrap(), -1024.0);
        assert_eq!(get(tags::MODALITY).to_str().unwrap(), "CT");
        assert_eq!(get(tags::ROWS).to_int::<u32>().unwrap(), 512);
        // Pixel Representation 1: a pixel-valued attribute is signed (0xfc00 = −1024).
        assert_eq!(get(tags::SMALLEST_IMAGE_PIXEL_VALUE).vr(), VR::SS);
        assert_eq!(
            get(tags::SMALLEST_IMAGE_PIXEL_VALUE)
                .to_int::<i32>()
                .unwrap(),
            -1024
        );
        assert_eq!(get(Tag(0x0009, 0x1001)).vr(), VR::UN);
    }

    #[test]
    fn big_endian_numbers_and_malformed_lengths() {
        let mut object = InMemDicomObject::from_element_iter([un(tags::ROWS, &[2, 0])]);
        read_known_vrs(&mut object, true).unwrap();
        assert_eq!(
            object.get(tags::ROWS).unwrap().to_int::<u32>().unwrap(),
            512
        );

        let mut object = InMemDicomObject::from_element_iter([un(tags::COLUMNS, &[1, 2, 3])]);
        let error = read_known_vrs(&mut object, false).unwrap_err().to_string();
        assert!(error.contains("(0028,0011)"), "{error}");
    }
}
