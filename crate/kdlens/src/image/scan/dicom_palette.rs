//! PALETTE COLOR images (ultrasound stores many this way): each stored value is an index into a
//! red, a green and a blue lookup table (PS3.3 C.7.6.3.1.5–6), given whole or as segments
//! (C.7.9.2), as pydicom's `apply_color_lut` reads them.

use dicom_core::Tag;
use dicom_object::InMemDicomObject;

use crate::{Error, Result, image::RgbaImage};

/// Red, green and blue: the Palette Color Lookup Table Descriptor, Data and Segmented Data tags.
const CHANNELS: [(Tag, Tag, Tag); 3] = [
    (
        Tag(0x0028, 0x1101),
        Tag(0x0028, 0x1201),
        Tag(0x0028, 0x1221),
    ),
    (
        Tag(0x0028, 0x1102),
        Tag(0x0028, 0x1202),
        Tag(0x0028, 0x1222),
    ),
    (
        Tag(0x0028, 0x1103),
        Tag(0x0028, 0x1203),
        Tag(0x0028, 0x1223),
    ),
];

/// The RGBA image of a frame's stored `indices` (`rows × cols`) through the file's palettes;
/// 16-bit entries keep their high byte.
pub(super) fn palette_image(
    object: &InMemDicomObject,
    indices: &[u16],
    [rows, cols]: [usize; 2],
) -> Result<RgbaImage> {
    let palettes = CHANNELS
        .iter()
        .map(|&tags| Palette::read(object, tags))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(rows * cols * 4);
    for &index in indices.iter().take(rows * cols) {
        out.extend(palettes.iter().map(|p| p.colour(index)));
        out.push(255);
    }
    RgbaImage::new(cols, rows, out)
}

/// One channel's table.
struct Palette {
    /// The stored value of the first entry.
    first: i64,
    entries: Vec<u16>,
    /// Bits per entry (8 or 16).
    bits: u32,
}

impl Palette {
    fn read(
        object: &InMemDicomObject,
        (descriptor, data, segmented): (Tag, Tag, Tag),
    ) -> Result<Self> {
        let error = || Error::Decode("the palette colour lookup tables are malformed".into());
        let [count, first, bits] = object
            .get(descriptor)
            .ok_or_else(error)?
            .to_multi_int::<i64>()
            .map_err(|_| error())?[..]
        else {
            return Err(error());
        };
        let count = if count == 0 { 65_536 } else { count as usize };
        let bits = match bits {
            8 | 16 => bits as u32,
            _ => return Err(error()),
        };
        let words = |tag| -> Option<Result<Vec<u16>>> {
            let element = object.get(tag)?;
            Some(element.to_multi_int::<u16>().map_err(|_| error()))
        };
        let entries = match (words(data), words(segmented)) {
            (Some(plain), _) => plain?,
            (None, Some(segments)) => expand_segments(&segments?).ok_or_else(error)?,
            (None, None) => return Err(error()),
        };
        if entries.len() < count {
            return Err(error());
        }
        Ok(Self {
            first,
            entries: entries[..count].to_vec(),
            bits,
        })
    }

    /// The 8-bit colour of stored value `index` (values outside the table take its ends).
    fn colour(&self, index: u16) -> u8 {
        let at = (index as i64 - self.first).clamp(0, self.entries.len() as i64 - 1);
        let entry = self.entries[at as usize];
        if self.bits == 16 {
            (entry >> 8) as u8
        } else {
            entry as u8
        }
    }
}

/// A segmented table (PS3.3 C.7.9.2) expanded: discrete segments `0, n, v₁ … vₙ` and linear ones
/// `1, n, y` (from the last value to `y` in `n` steps); `None` for indirect segments (which
/// kdlens does not read) and anything malformed.
fn expand_segments(words: &[u16]) -> Option<Vec<u16>> {
    let mut out: Vec<u16> = Vec::new();
    let mut at = 0;
    while at < words.len() {
        let (opcode, n) = (words[at], *words.get(at + 1)? as usize);
        match opcode {
            0 => {
                out.extend(words.get(at + 2..at + 2 + n)?);
                at += 2 + n;
            }
            1 => {
                let start = f64::from(*out.last()?);
                let end = f64::from(*words.get(at + 2)?);
                out.extend(
                    (1..=n).map(|i| (start + (end - start) * i as f64 / n as f64).round() as u16),
                );
                at += 3;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_expand_as_the_standard_draws_them() {
        // Discrete 0, 10; then linear to 50 in 4 steps; then discrete 7.
        let words = [0, 2, 0, 10, 1, 4, 50, 0, 1, 7];
        assert_eq!(
            expand_segments(&words).unwrap(),
            vec![0, 10, 20, 30, 40, 50, 7]
        );
        assert_eq!(expand_segments(&[2, 1, 0, 0]), None, "indirect");
        assert_eq!(
            expand_segments(&[1, 4, 50]),
            None,
            "linear with nothing before"
        );
        assert_eq!(expand_segments(&[0, 5, 1]), None, "cut short");
    }

    #[test]
    fn indices_outside_the_table_take_its_ends_and_16_bits_their_high_byte() {
        let palette = Palette {
            first: 10,
            entries: vec![0x0100, 0x8000, 0xff00],
            bits: 16,
        };
        let colours: Vec<u8> = [0, 10, 11, 12, 400].map(|i| palette.colour(i)).to_vec();
        assert_eq!(colours, vec![1, 1, 0x80, 0xff, 0xff]);
    }
}
