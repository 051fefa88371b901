//! A walk over a DICOM file's element headers that checks every stated length against the bytes
//! that follow it, before dicom-rs reads the file: dicom-rs 0.10.1 allocates and zeroes each
//! element's stated length before it reads the value, so a file of a few hundred bytes stating a
//! 4 GiB element costs 4 GiB and a second (found by fuzzing). With this check every allocation is
//! bounded by the size of the file (of the inflated data set, for deflated files).

use std::io::Read;

use dicom_core::{
    Tag, VR,
    dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr},
};
use dicom_dictionary_std::StandardDataDictionary;

use crate::{Error, Result};

/// Most bytes a deflated data set may inflate to.
const MAX_INFLATED: u64 = 1 << 30;

/// A stated length meaning "until a delimiter".
const UNDEFINED: u32 = u32::MAX;
/// The item tag, and the item and sequence delimiters (group `FFFE`).
const ITEM: u16 = 0xE000;
const SEQUENCE_DELIMITER: u16 = 0xE0DD;
/// The pixel data element, whose undefined-length value holds fragments, not elements.
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);

/// How a data set's element headers are written.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Encoding {
    ExplicitLittle,
    ImplicitLittle,
    ExplicitBig,
}

/// Checks the DICOM file in `bytes` (preamble and `DICM` included or not): every element, item
/// and fragment states a length that fits in what follows it.
pub(super) fn check(bytes: &[u8]) -> Result<()> {
    let start = if bytes.get(128..132) == Some(b"DICM") {
        132
    } else if bytes.get(..4) == Some(b"DICM") {
        4
    } else {
        return Ok(()); // not Part 10: dicom-rs refuses it
    };
    let body = &bytes[start..];
    let (meta_end, transfer_syntax) = walk_meta(body)?;
    let data_set = &body[meta_end..];
    match transfer_syntax.as_str() {
        "1.2.840.10008.1.2" => walk(data_set, Encoding::ImplicitLittle),
        "1.2.840.10008.1.2.2" => walk(data_set, Encoding::ExplicitBig),
        "1.2.840.10008.1.2.1.99" => walk(&inflate(data_set)?, Encoding::ExplicitLittle),
        _ => walk(data_set, Encoding::ExplicitLittle),
    }
}

/// The file meta group (explicit VR little endian, group 0002): where it ends and the transfer
/// syntax UID it states (empty when absent).
fn walk_meta(body: &[u8]) -> Result<(usize, String)> {
    let mut reader = Reader::new(body, Encoding::ExplicitLittle);
    let mut transfer_syntax = String::new();
    while reader.peek_group() == Some(0x0002) {
        let Some(header) = reader.header() else { break };
        let value = reader.value(&header)?;
        if header.tag == Tag(0x0002, 0x0010) {
            transfer_syntax = String::from_utf8_lossy(value)
                .trim_end_matches(['\0', ' '])
                .to_string();
        }
    }
    Ok((reader.pos, transfer_syntax))
}

/// A deflated data set, inflated up to [`MAX_INFLATED`] bytes.
fn inflate(data_set: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data_set)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|_| Error::Decode("the deflated data set is corrupt".into()))?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(Error::Decode(format!(
            "the deflated data set inflates to more than {MAX_INFLATED} bytes"
        )));
    }
    Ok(out)
}

/// Walks every element of a data set, descending into sequences and items (their contents are
/// elements too) and skipping values and pixel-data fragments after checking their lengths.
fn walk(data_set: &[u8], encoding: Encoding) -> Result<()> {
    let mut reader = Reader::new(data_set, encoding);
    let mut in_fragments = false;
    while let Some(header) = reader.header() {
        if header.tag.group() == 0xFFFE {
            match header.tag.element() {
                ITEM if in_fragments => {
                    reader.value(&header)?;
                }
                ITEM if header.length != UNDEFINED => reader.check_fits(&header)?,
                SEQUENCE_DELIMITER => in_fragments = false,
                _ => {}
            }
            continue;
        }
        if header.length == UNDEFINED {
            // A sequence or pixel data of undefined length: its items follow.
            in_fragments |= header.tag == PIXEL_DATA;
            continue;
        }
        if header.is_sequence(encoding) {
            reader.check_fits(&header)?;
        } else {
            reader.value(&header)?;
        }
    }
    Ok(())
}

/// An element header: its tag, explicit VR (if any) and stated value length.
struct Header {
    tag: Tag,
    vr: Option<VR>,
    length: u32,
}

impl Header {
    /// Whether the value holds items: an explicit `SQ`, or a tag the dictionary knows as a
    /// sequence in an implicit-VR data set (where dicom-rs also descends into it).
    fn is_sequence(&self, encoding: Encoding) -> bool {
        match self.vr {
            Some(vr) => vr == VR::SQ,
            None => {
                encoding == Encoding::ImplicitLittle
                    && StandardDataDictionary
                        .by_tag(self.tag)
                        .is_some_and(|e| e.vr() == VirtualVr::Exact(VR::SQ))
            }
        }
    }
}

/// A cursor over element headers in one encoding.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    encoding: Encoding,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], encoding: Encoding) -> Self {
        Self {
            data,
            pos: 0,
            encoding,
        }
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.data.get(at..at + 2)?.try_into().ok()?;
        Some(match self.encoding {
            Encoding::ExplicitBig => u16::from_be_bytes(b),
            _ => u16::from_le_bytes(b),
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.data.get(at..at + 4)?.try_into().ok()?;
        Some(match self.encoding {
            Encoding::ExplicitBig => u32::from_be_bytes(b),
            _ => u32::from_le_bytes(b),
        })
    }

    /// The group of the next tag, if a whole tag follows.
    fn peek_group(&self) -> Option<u16> {
        self.u16_at(self.pos)
    }

    /// The next header, read past; `None` at the end (or before a header cut short, which
    /// dicom-rs reports itself).
    fn header(&mut self) -> Option<Header> {
        let at = self.pos;
        let tag = Tag(self.u16_at(at)?, self.u16_at(at + 2)?);
        let explicit = self.encoding != Encoding::ImplicitLittle && tag.group() != 0xFFFE;
        let (vr, length, size) = if !explicit {
            (None, self.u32_at(at + 4)?, 8)
        } else {
            // An unknown VR is read as UN, as dicom-rs does.
            let code: [u8; 2] = self.data.get(at + 4..at + 6)?.try_into().ok()?;
            let vr = VR::from_binary(code).unwrap_or(VR::UN);
            if long_length(vr) {
                (Some(vr), self.u32_at(at + 8)?, 12)
            } else {
                (Some(vr), u32::from(self.u16_at(at + 6)?), 8)
            }
        };
        self.pos = at + size;
        Some(Header { tag, vr, length })
    }

    /// Checks that the value of `header` fits in what is left.
    fn check_fits(&self, header: &Header) -> Result<()> {
        let left = self.data.len() - self.pos;
        if header.length as usize > left {
            return Err(Error::Decode(format!(
                "element ({:04X},{:04X}) states {} bytes but only {left} follow: the file is \
                 truncated or corrupt",
                header.tag.group(),
                header.tag.element(),
                header.length
            )));
        }
        Ok(())
    }

    /// The value of `header` (checked to fit), read past.
    fn value(&mut self, header: &Header) -> Result<&'a [u8]> {
        if header.length == UNDEFINED {
            return Ok(&[]);
        }
        self.check_fits(header)?;
        let value = &self.data[self.pos..self.pos + header.length as usize];
        self.pos += header.length as usize;
        Ok(value)
    }
}

/// Whether an explicit VR has the 12-byte header with a 32-bit length: all but the 16-bit-length
/// VRs that PS3.5 7.1.2 lists.
fn long_length(vr: VR) -> bool {
    use VR::*;
    !matches!(
        vr,
        AE | AS
            | AT
            | CS
            | DA
            | DS
            | DT
            | FL
            | FD
            | IS
            | LO
            | LT
            | PN
            | SH
            | SL
            | SS
            | ST
            | TM
            | UI
            | UL
            | US
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An explicit-VR little-endian element.
    fn element(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = [group.to_le_bytes(), element.to_le_bytes()].concat();
        out.extend_from_slice(vr);
        if long_length(VR::from_binary(*vr).unwrap()) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    /// A Part 10 file: preamble, `DICM`, a meta group naming `transfer_syntax`, then `data_set`.
    fn file(transfer_syntax: &str, data_set: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        let mut uid = transfer_syntax.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        out.extend(element(0x0002, 0x0010, b"UI", &uid));
        out.extend_from_slice(data_set);
        out
    }

    /// A header stating `length` bytes for element `(0010,0010)`, with nothing after it.
    fn overlong(encoding: Encoding, length: u32) -> Vec<u8> {
        match encoding {
            Encoding::ExplicitLittle => {
                let mut e = element(0x0009, 0x1010, b"OB", &[]);
                e[8..12].copy_from_slice(&length.to_le_bytes());
                e
            }
            Encoding::ImplicitLittle => [
                &0x0009u16.to_le_bytes()[..],
                &0x1010u16.to_le_bytes(),
                &length.to_le_bytes(),
            ]
            .concat(),
            Encoding::ExplicitBig => [
                &0x0009u16.to_be_bytes()[..],
                &0x1010u16.to_be_bytes(),
                b"OB",
                &[0, 0],
                &length.to_be_bytes(),
            ]
            .concat(),
        }
    }

    #[test]
    fn a_length_past_the_end_is_refused_in_every_encoding() {
        for (uid, encoding) in [
            ("1.2.840.10008.1.2.1", Encoding::ExplicitLittle),
            ("1.2.840.10008.1.2", Encoding::ImplicitLittle),
            ("1.2.840.10008.1.2.2", Encoding::ExplicitBig),
        ] {
            let err = check(&file(uid, &overlong(encoding, 0xFFFF_FFF0)))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("(0009,1010) states 4294967280 bytes but only 0 follow"),
                "{uid}: {err}"
            );
            assert!(check(&file(uid, &overlong(encoding, 0))).is_ok(), "{uid}");
        }
    }

    #[test]
    fn sequences_items_and_fragments_are_walked_into() {
        // A defined-length sequence whose item holds an element stating too much.
        let inner = overlong(Encoding::ExplicitLittle, 1000);
        let mut item = [0xFFFEu16.to_le_bytes(), ITEM.to_le_bytes()].concat();
        item.extend_from_slice(&(inner.len() as u32).to_le_bytes());
        item.extend_from_slice(&inner);
        let sequence = element(0x0008, 0x1140, b"SQ", &item);
        let err = check(&file("1.2.840.10008.1.2.1", &sequence)).unwrap_err();
        assert!(err.to_string().contains("states 1000 bytes"), "{err}");

        // Encapsulated pixel data: fragments are skipped by their lengths, one states too much.
        let mut pixels = element(0x7FE0, 0x0010, b"OB", &[]);
        pixels[8..12].copy_from_slice(&UNDEFINED.to_le_bytes());
        let fragment = |len: u32, body: &[u8]| {
            let mut f = [0xFFFEu16.to_le_bytes(), ITEM.to_le_bytes()].concat();
            f.extend_from_slice(&len.to_le_bytes());
            f.extend_from_slice(body);
            f
        };
        let end = [
            &0xFFFEu16.to_le_bytes()[..],
            &SEQUENCE_DELIMITER.to_le_bytes(),
            &[0; 4],
        ]
        .concat();
        // A fragment's bytes may look like anything, even an overlong header: they are skipped.
        let good = [
            pixels.clone(),
            fragment(0, &[]),
            fragment(12, &overlong(Encoding::ExplicitLittle, 99_999)),
            end.clone(),
        ]
        .concat();
        assert!(check(&file("1.2.840.10008.1.2.4.50", &good)).is_ok());
        let bad = [pixels, fragment(0, &[]), fragment(5000, &[1, 2, 3])].concat();
        let err = check(&file("1.2.840.10008.1.2.4.50", &bad)).unwrap_err();
        assert!(
            err.to_string().contains("(FFFE,E000) states 5000 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_deflated_data_set_is_checked_once_inflated() {
        use std::io::Write;
        let mut deflated = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
        deflated
            .write_all(&overlong(Encoding::ExplicitLittle, 70_000))
            .unwrap();
        let bytes = file("1.2.840.10008.1.2.1.99", &deflated.finish().unwrap());
        let err = check(&bytes).unwrap_err();
        assert!(err.to_string().contains("states 70000 bytes"), "{err}");
    }

    #[test]
    fn the_meta_group_is_checked_too() {
        let mut bytes = file("1.2.840.10008.1.2.1", &[]);
        bytes[132 + 6..132 + 8].copy_from_slice(&400u16.to_le_bytes());
        let err = check(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("(0002,0010) states 400 bytes"),
            "{err}"
        );
    }
}
