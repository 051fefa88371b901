//! A walk over a DICOM file's element headers that checks every stated value length against the
//! bytes that follow it, before dicom-rs reads the file: dicom-rs 0.10.1 allocates and zeroes each
//! value's stated length before it reads the value, so a file of a few hundred bytes stating a
//! 4 GiB element cost 4 GiB and a second (found by fuzzing). The walk reads forward only, skipping
//! values without holding them, so a deflated data set is checked as it inflates, in constant
//! memory. It follows the element structure as dicom-rs reads it: the meta group ends where its
//! group length says, a group FFFE element other than an item or a delimiter has a value, and so
//! does an item anywhere but directly inside a sequence (each of these let a fuzzed file of a few
//! kilobytes cost 3–4 GB before the walk knew it).

use std::io::{self, Read};

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
const ITEM_DELIMITER: u16 = 0xE00D;
const SEQUENCE_DELIMITER: u16 = 0xE0DD;
/// The pixel data element, whose undefined-length value holds fragments, not elements.
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);

/// The transfer syntaxes whose data set is deflated (Deflated Explicit VR Little Endian, and the
/// JPIP Referenced Deflate ones, which dicom-rs inflates too).
const DEFLATED: [&str; 3] = [
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.95",
    "1.2.840.10008.1.2.4.205",
];

/// How a data set's element headers are written.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Encoding {
    ExplicitLittle,
    ImplicitLittle,
    ExplicitBig,
}

/// Where a Part 10 file's data set starts (after the preamble, `DICM` and the file meta group)
/// and the transfer syntax the meta group names (empty when it names none); `None` for bytes
/// without `DICM` at 128 or at 0.
pub(super) fn meta_group(bytes: &[u8]) -> Result<Option<(usize, String)>> {
    let start = if bytes.get(128..132) == Some(b"DICM") {
        132
    } else if bytes.get(..4) == Some(b"DICM") {
        4
    } else {
        return Ok(None);
    };
    let mut meta = Walker::new(&bytes[start..], Encoding::ExplicitLittle);
    let transfer_syntax = meta.meta_group()?;
    Ok(Some((start + meta.read as usize, transfer_syntax)))
}

/// Whether a data set in transfer syntax `uid` is deflated.
pub(super) fn is_deflated(uid: &str) -> bool {
    DEFLATED.contains(&uid)
}

/// Checks the data set `data_set`, written in `transfer_syntax`: every element value and
/// pixel-data fragment states a length that fits in what follows it.
pub(super) fn check_data_set(data_set: &[u8], transfer_syntax: &str) -> Result<()> {
    if is_deflated(transfer_syntax) {
        let inflated = flate2::read::DeflateDecoder::new(data_set).take(MAX_INFLATED + 1);
        let mut walker = Walker::new(inflated, Encoding::ExplicitLittle);
        walker.data_set()?;
        if walker.read > MAX_INFLATED {
            return Err(Error::Decode(format!(
                "the deflated data set inflates to more than {MAX_INFLATED} bytes"
            )));
        }
        return Ok(());
    }
    let encoding = match transfer_syntax {
        "1.2.840.10008.1.2" => Encoding::ImplicitLittle,
        "1.2.840.10008.1.2.2" => Encoding::ExplicitBig,
        _ => Encoding::ExplicitLittle,
    };
    Walker::new(data_set, encoding).data_set()
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

/// A forward-only cursor over element headers in one encoding.
struct Walker<R> {
    source: R,
    encoding: Encoding,
    /// Bytes read so far.
    read: u64,
}

impl<R: Read> Walker<R> {
    fn new(source: R, encoding: Encoding) -> Self {
        Self {
            source,
            encoding,
            read: 0,
        }
    }

    /// `N` bytes, or `None` at the end of the source (a header cut short is left to dicom-rs).
    fn bytes<const N: usize>(&mut self) -> Result<Option<[u8; N]>> {
        let mut out = [0u8; N];
        let mut filled = 0;
        while filled < N {
            match self.source.read(&mut out[filled..]) {
                Ok(0) => return Ok(None),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Error::Decode("the deflated data set is corrupt".into())),
            }
        }
        self.read += N as u64;
        Ok(Some(out))
    }

    fn u16(&self, b: [u8; 2]) -> u16 {
        match self.encoding {
            Encoding::ExplicitBig => u16::from_be_bytes(b),
            _ => u16::from_le_bytes(b),
        }
    }

    fn u32(&self, b: [u8; 4]) -> u32 {
        match self.encoding {
            Encoding::ExplicitBig => u32::from_be_bytes(b),
            _ => u32::from_le_bytes(b),
        }
    }

    /// The next header, read past; `None` at the end.
    fn header(&mut self) -> Result<Option<Header>> {
        let Some(tag) = self.bytes::<4>()? else {
            return Ok(None);
        };
        let tag = Tag(self.u16([tag[0], tag[1]]), self.u16([tag[2], tag[3]]));
        let explicit = self.encoding != Encoding::ImplicitLittle && tag.group() != 0xFFFE;
        let header = if !explicit {
            self.bytes::<4>()?.map(|l| (None, self.u32(l)))
        } else {
            let Some(code) = self.bytes::<2>()? else {
                return Ok(None);
            };
            // An unknown VR is read as UN, as dicom-rs does.
            let vr = VR::from_binary(code).unwrap_or(VR::UN);
            if long_length(vr) {
                self.bytes::<2>()?;
                self.bytes::<4>()?.map(|l| (Some(vr), self.u32(l)))
            } else {
                self.bytes::<2>()?
                    .map(|l| (Some(vr), u32::from(self.u16(l))))
            }
        };
        Ok(header.map(|(vr, length)| Header { tag, vr, length }))
    }

    /// Reads past the value of `header`, failing when fewer bytes follow than it states.
    /// Returns the value when `keep` (a few bytes: the transfer syntax UID).
    fn value(&mut self, header: &Header, keep: bool) -> Result<Vec<u8>> {
        if header.length == UNDEFINED {
            return Ok(Vec::new());
        }
        let length = u64::from(header.length);
        let mut part = (&mut self.source).take(length);
        let (got, kept) = if keep {
            let mut value = Vec::new();
            let got = part.read_to_end(&mut value);
            (got.map(|n| n as u64), value)
        } else {
            (io::copy(&mut part, &mut io::sink()), Vec::new())
        };
        let got = got.map_err(|_| Error::Decode("the deflated data set is corrupt".into()))?;
        self.read += got;
        if got < length {
            return Err(overlong(header, got));
        }
        Ok(kept)
    }

    /// The file meta group (explicit VR little endian, group 0002, at the start of the source):
    /// its transfer syntax UID (empty when absent). It ends where dicom-rs ends it: when it
    /// starts with its group length (0002,0000), after the first element that brings the bytes
    /// read past that length, whatever its group (a deflated data set inflates from there, so
    /// checking it from anywhere else checks other bytes than dicom-rs reads); otherwise before
    /// the first tag of another group.
    fn meta_group(&mut self) -> Result<String> {
        let mut transfer_syntax = String::new();
        let mut stated_end = None;
        loop {
            let before = self.read;
            if stated_end.is_some_and(|end| before >= end) {
                break;
            }
            let header = self.header()?;
            let Some(header) = header.filter(|h| stated_end.is_some() || h.tag.group() == 0x0002)
            else {
                // Give back what was read of the data set's first header.
                self.read = before;
                break;
            };
            let group_length =
                before == 0 && header.tag == Tag(0x0002, 0x0000) && header.length == 4;
            let keep = group_length || header.tag == Tag(0x0002, 0x0010) && header.length <= 64;
            let value = self.value(&header, keep)?;
            if group_length {
                let length = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
                stated_end = Some(self.read + u64::from(length));
            } else if keep {
                transfer_syntax = String::from_utf8_lossy(&value)
                    .trim_end_matches(['\0', ' '])
                    .to_string();
            }
        }
        Ok(transfer_syntax)
    }

    /// Walks every element of a data set as dicom-rs reads it, descending into sequences and
    /// their items (whose contents are elements) and reading past values and pixel-data fragments.
    fn data_set(&mut self) -> Result<()> {
        // The sequences, items and encapsulated pixel data the walk is inside, innermost last.
        let mut open: Vec<Open> = Vec::new();
        loop {
            let at = self.read;
            let Some(header) = self.header()? else {
                return Ok(());
            };
            // dicom-rs leaves a defined-length sequence or item once it has read to its end.
            while let Some(Open::Sequence(Some(end)) | Open::Item(Some(end))) = open.last() {
                if at < *end {
                    break;
                }
                open.pop();
            }
            let undefined = header.length == UNDEFINED;
            let end = (!undefined).then(|| self.read + u64::from(header.length));
            let group_fffe = header.tag.group() == 0xFFFE;
            match (open.last(), group_fffe, header.tag.element()) {
                // Encapsulated pixel data: fragments, skipped by their lengths, to its delimiter.
                (Some(Open::Fragments), true, SEQUENCE_DELIMITER) => {
                    open.pop();
                }
                (Some(Open::Fragments), _, _) => {
                    self.value(&header, false)?;
                }
                // Directly inside a sequence dicom-rs reads item headers: an item (whose
                // contents are elements, never one allocation) or a delimiter.
                (Some(Open::Sequence(_)), true, ITEM) => open.push(Open::Item(end)),
                (Some(Open::Sequence(_)), true, ITEM_DELIMITER | SEQUENCE_DELIMITER) => {
                    open.pop();
                }
                // Anywhere else an item delimiter closes what is open, or is ignored.
                (_, true, ITEM_DELIMITER) => {
                    open.pop();
                }
                // Any other header is an element. dicom-rs reads every one of undefined length
                // as a sequence (pixel data: as fragments); a defined-length sequence element by
                // element; any other — a group FFFE one outside a sequence included — as a value,
                // allocating its stated length.
                _ if undefined => open.push(if header.tag == PIXEL_DATA {
                    Open::Fragments
                } else {
                    Open::Sequence(None)
                }),
                _ if !group_fffe && header.is_sequence(self.encoding) => {
                    open.push(Open::Sequence(end));
                }
                _ => {
                    let read = Header {
                        length: self.read_length(&header),
                        ..header
                    };
                    self.value(&read, false)?;
                }
            }
        }
    }

    /// How many bytes of `header`'s value dicom-rs reads: a value of binary numbers in whole
    /// numbers only — it reads `length / width` of them and takes the next header from there, a
    /// few bytes before the stated end when the length is no multiple of the width — and any
    /// other value whole.
    fn read_length(&self, header: &Header) -> u32 {
        use VR::*;
        let vr = header.vr.unwrap_or_else(|| implicit_vr(header.tag));
        let width = match vr {
            US | OW | SS => 2,
            AT | FL | OF | SL | OL | UL => 4,
            FD | OD | SV | OV | UV => 8,
            _ => 1,
        };
        header.length - header.length % width
    }
}

/// The VR dicom-rs gives an implicit-VR element: OW for pixel and overlay data, else the data
/// dictionary's (the first of several), else UN.
fn implicit_vr(tag: Tag) -> VR {
    if tag == PIXEL_DATA || (tag.group() >> 8 == 0x60 && tag.element() == 0x3000) {
        return VR::OW;
    }
    StandardDataDictionary
        .by_tag(tag)
        .map_or(VR::UN, |entry| entry.vr().relaxed())
}

/// What a data set's walk is inside of.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Open {
    /// A sequence, ending where its defined length says (`None`: at its delimiter).
    Sequence(Option<u64>),
    /// An item of a sequence, ending likewise (`None`: at its delimiter).
    Item(Option<u64>),
    /// Encapsulated pixel data: its items are fragments, skipped by their lengths.
    Fragments,
}

/// The error of an element whose value states more bytes than the `got` that follow it.
fn overlong(header: &Header, got: u64) -> Error {
    Error::Decode(format!(
        "element ({:04X},{:04X}) states {} bytes but only {got} follow: the file is truncated or \
         corrupt",
        header.tag.group(),
        header.tag.element(),
        header.length,
    ))
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

    /// The whole check of a Part 10 file, as the reader runs it.
    fn check(bytes: &[u8]) -> Result<()> {
        let (at, transfer_syntax) = meta_group(bytes)?.expect("a Part 10 file");
        check_data_set(&bytes[at..], &transfer_syntax)
    }

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

    /// Where dicom-rs starts reading the data set of a Part 10 file.
    fn dicom_rs_data_set_start(bytes: &[u8]) -> usize {
        let mut rest = &bytes[128..];
        dicom_object::FileMetaTable::from_reader(&mut rest).unwrap();
        bytes.len() - rest.len()
    }

    #[test]
    fn the_meta_group_ends_where_dicom_rs_ends_it() {
        let uid = element(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1.99\0");
        let sop = element(0x0002, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0");
        let instance = element(0x0002, 0x0003, b"UI", b"1.2.3.4\0");
        let other_group = element(0x0008, 0x0008, b"CS", b"ORIGINAL");
        let data_set = element(0x0010, 0x0020, b"LO", b"ID");
        // The group length: exact, counting an element of another group too, or falling short
        // of the last meta element (dicom-rs then reads it as part of the group all the same).
        let meta = [sop, instance, uid].concat();
        for (elements, length) in [
            (meta.clone(), meta.len()),
            (
                [meta.clone(), other_group.clone()].concat(),
                meta.len() + other_group.len(),
            ),
            (meta.clone(), meta.len() - 3),
        ] {
            let mut bytes = vec![0u8; 128];
            bytes.extend_from_slice(b"DICM");
            bytes.extend(element(
                0x0002,
                0x0000,
                b"UL",
                &(length as u32).to_le_bytes(),
            ));
            bytes.extend(&elements);
            bytes.extend(&data_set);
            let (at, transfer_syntax) = meta_group(&bytes).unwrap().unwrap();
            assert_eq!(at, dicom_rs_data_set_start(&bytes), "group length {length}");
            assert_eq!(at, bytes.len() - data_set.len());
            assert_eq!(transfer_syntax, "1.2.840.10008.1.2.1.99");
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
                .expect_err(uid)
                .to_string();
            assert!(
                err.contains("(0009,1010) states 4294967280 bytes but only 0 follow"),
                "{uid}: {err}"
            );
            assert!(check(&file(uid, &overlong(encoding, 0))).is_ok(), "{uid}");
        }
    }

    /// A header of group FFFE (no VR) stating `length`.
    fn fffe(element: u16, length: u32) -> Vec<u8> {
        [
            &0xFFFEu16.to_le_bytes()[..],
            &element.to_le_bytes(),
            &length.to_le_bytes(),
        ]
        .concat()
    }

    #[test]
    fn group_fffe_elements_with_values_state_lengths_that_must_fit() {
        let uid = "1.2.840.10008.1.2.1";
        let after = element(0x0010, 0x0020, b"LO", b"ID");
        // Outside a sequence dicom-rs reads any (FFFE,xxxx) but the item delimiter as an element
        // with a value, allocating what it states (found by fuzzing: 3 KB files costing 4 GB).
        // A sequence delimiter with nothing to close is an element too (a fuzzed SR file).
        for header in [
            fffe(0xFFFF, 0xFDFF_FFFF),
            fffe(ITEM, 0xFDFF_FFFF),
            fffe(SEQUENCE_DELIMITER, 0xFDFF_FFFF),
        ] {
            let err = check(&file(uid, &[header, after.clone()].concat())).unwrap_err();
            assert!(
                err.to_string()
                    .contains("states 4261412863 bytes but only 10 follow"),
                "{err}"
            );
        }
        // Stated lengths that fit are fine; such an item's bytes are a value, not elements.
        assert!(check(&file(uid, &[fffe(0xFFFF, 10), after.clone()].concat())).is_ok());
        let inner = overlong(Encoding::ExplicitLittle, 1000);
        assert!(
            check(&file(
                uid,
                &[fffe(ITEM, inner.len() as u32), inner.clone()].concat()
            ))
            .is_ok()
        );

        // Inside a sequence an item holds elements; an item directly inside that item is a
        // value again (a fuzzed DICOMDIR: its items' bytes were read as elements, misaligned).
        let sequence = |item_contents: &[u8]| {
            let item = [
                fffe(ITEM, item_contents.len() as u32),
                item_contents.to_vec(),
            ]
            .concat();
            let mut sq = element(0x0004, 0x1220, b"SQ", &item);
            sq[8..12].copy_from_slice(&UNDEFINED.to_le_bytes());
            [sq, fffe(SEQUENCE_DELIMITER, 0), after.clone()].concat()
        };
        let err = check(&file(uid, &sequence(&inner))).unwrap_err();
        assert!(err.to_string().contains("states 1000 bytes"), "{err}");
        let nested = [fffe(ITEM, inner.len() as u32), inner.clone()].concat();
        assert!(check(&file(uid, &sequence(&nested))).is_ok());
        let nested_overlong = [fffe(ITEM, 0x7000_0000), inner].concat();
        let err = check(&file(uid, &sequence(&nested_overlong))).unwrap_err();
        assert!(
            err.to_string()
                .contains("(FFFE,E000) states 1879048192 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_number_value_is_read_in_whole_numbers_as_dicom_rs_reads_it() {
        // An SL value stated as 5 bytes: dicom-rs reads one 4-byte number and the next header
        // from the fifth byte on (a fuzzed file hid a 1.4 GB value this way).
        let uid = "1.2.840.10008.1.2.1";
        let mut sl = element(0x0011, 0x1023, b"SL", &[1, 0, 0, 0]);
        sl[6..8].copy_from_slice(&5u16.to_le_bytes());
        let err = check(&file(
            uid,
            &[sl.clone(), overlong(Encoding::ExplicitLittle, 0xFFFF_FFF0)].concat(),
        ))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("(0009,1010) states 4294967280 bytes"),
            "{err}"
        );
        let whole = element(0x0011, 0x1023, b"SL", &[1, 0, 0, 0, 2, 0, 0, 0]);
        assert!(
            check(&file(
                uid,
                &[whole, element(0x0010, 0x0020, b"LO", b"ID")].concat()
            ))
            .is_ok()
        );
        // In implicit VR the dictionary gives the VR: (0028,0010) Rows is US.
        let implicit = "1.2.840.10008.1.2";
        let rows = [
            &0x0028u16.to_le_bytes()[..],
            &0x0010u16.to_le_bytes(),
            &3u32.to_le_bytes(),
            &[7, 0],
        ]
        .concat();
        let err = check(&file(
            implicit,
            &[rows, overlong(Encoding::ImplicitLittle, 0xFFFF_FFF0)].concat(),
        ))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("(0009,1010) states 4294967280 bytes"),
            "{err}"
        );
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
    fn a_sequence_stating_more_than_follows_is_left_to_dicom_rs() {
        // dicom-rs reads a sequence's contents element by element and stops at the end of the
        // file: a trailing sequence or item that states too much is not an allocation.
        let inner = element(0x0008, 0x0100, b"SH", b"CODE");
        let mut item = [0xFFFEu16.to_le_bytes(), ITEM.to_le_bytes()].concat();
        item.extend_from_slice(&5000u32.to_le_bytes());
        item.extend_from_slice(&inner);
        let mut sequence = element(0xFFFA, 0xFFFA, b"SQ", &item);
        sequence[8..12].copy_from_slice(&9000u32.to_le_bytes());
        assert!(check(&file("1.2.840.10008.1.2.1", &sequence)).is_ok());
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
