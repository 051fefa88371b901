//! One frame's stored samples as unsigned words, read by kdlens from bytes laid out as DICOM
//! stores them natively (PS3.5 8.1.1, 8.2, A.3): 1, 8, 16 or 32 bits allocated, in either byte
//! order, colour by pixel or by plane (Planar Configuration 0 or 1). Native pixel data comes here
//! straight from the file, RLE frames after kdlens unpacks them, other encapsulated frames after
//! dicom-rs decodes them. dicom-rs 0.10.1 reads 8- and 16-bit little-endian data only, so kdlens
//! reads the rest as pydicom does, and uses one reader for all of it.

use std::borrow::Cow;

use dicom_core::{PrimitiveValue, VR};
use dicom_object::mem::InMemElement;

use crate::{Error, Result};

/// How one frame's samples lie in their bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Shape {
    pub rows: usize,
    pub cols: usize,
    /// Samples per pixel: 1 or 3.
    pub samples: usize,
    /// Bits Allocated: 1, 8, 16 or 32.
    pub bits: usize,
    /// Planar Configuration 1: each colour plane whole, one after another.
    pub planar: bool,
}

impl Shape {
    /// Samples in one frame.
    pub fn frame_samples(&self) -> usize {
        self.rows * self.cols * self.samples
    }
}

/// The byte order of the samples, and whether 8- and 1-bit samples sit in 16-bit words that a
/// big-endian file stores high byte first (VR OW in Explicit VR Big Endian): pydicom reads those
/// word by word, the second sample of each word first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Order {
    pub big_endian: bool,
    pub swapped_words: bool,
}

impl Order {
    /// Little-endian bytes, as every decoder hands out its frames.
    pub const LITTLE: Order = Order {
        big_endian: false,
        swapped_words: false,
    };
}

/// The bytes of native pixel data `element` in the order the file stores them, and how to read
/// them. dicom-rs keeps a value of VR OW as 16-bit numbers read in the file's byte order; they are
/// written back in that order here, so that one reader serves OB and OW alike.
pub(super) fn file_bytes(
    element: &InMemElement,
    big_endian: bool,
) -> Result<(Cow<'_, [u8]>, Order)> {
    let unreadable = || Error::Decode("cannot read the pixel data".into());
    let bytes = match element.value().primitive() {
        Some(PrimitiveValue::U8(bytes)) => Cow::Borrowed(&bytes[..]),
        Some(PrimitiveValue::U16(words)) => Cow::Owned(
            words
                .iter()
                .flat_map(|w| {
                    if big_endian {
                        w.to_be_bytes()
                    } else {
                        w.to_le_bytes()
                    }
                })
                .collect(),
        ),
        _ if !big_endian => element.to_bytes().map_err(|_| unreadable())?,
        _ => return Err(unreadable()),
    };
    let order = Order {
        big_endian,
        swapped_words: big_endian && element.vr() == VR::OW,
    };
    Ok((bytes, order))
}

/// Frame `frame`'s samples (frames follow each other with no padding, also for 1-bit data),
/// pixel by pixel: `[r, g, b, r, g, b, …]` for colour whatever the planar configuration.
pub(super) fn frame_words(
    bytes: &[u8],
    shape: Shape,
    frame: usize,
    order: Order,
) -> Result<Vec<u32>> {
    let count = shape.frame_samples();
    let first = frame * count;
    let byte = |p: usize| {
        bytes
            .get(if order.swapped_words { p ^ 1 } else { p })
            .copied()
    };
    let words: Option<Vec<u32>> = match shape.bits {
        1 => (first..first + count)
            .map(|s| byte(s / 8).map(|b| u32::from((b >> (s % 8)) & 1)))
            .collect(),
        8 => (first..first + count)
            .map(|s| byte(s).map(u32::from))
            .collect(),
        16 | 32 => {
            let width = shape.bits / 8;
            bytes
                .get(first * width..(first + count) * width)
                .map(|frame| {
                    frame
                        .chunks_exact(width)
                        .map(|w| word(w, order.big_endian))
                        .collect()
                })
        }
        bits => {
            return Err(Error::Decode(format!(
                "{bits}-bit pixels are not supported (1, 8, 16 and 32 are)"
            )));
        }
    };
    let words =
        words.ok_or_else(|| Error::Decode("the pixel data is shorter than its frames".into()))?;
    Ok(if shape.planar && shape.samples > 1 {
        by_pixel(&words, shape.samples)
    } else {
        words
    })
}

/// A 2- or 4-byte word in the given byte order.
fn word(bytes: &[u8], big_endian: bool) -> u32 {
    let fold = |acc: u32, &b: &u8| (acc << 8) | u32::from(b);
    if big_endian {
        bytes.iter().fold(0, fold)
    } else {
        bytes.iter().rev().fold(0, fold)
    }
}

/// Samples stored plane by plane (`[r…, g…, b…]`) put pixel by pixel.
fn by_pixel(planes: &[u32], samples: usize) -> Vec<u32> {
    let plane = planes.len() / samples;
    (0..plane * samples)
        .map(|i| planes[(i % samples) * plane + i / samples])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(samples: usize, bits: usize, planar: bool) -> Shape {
        Shape {
            rows: 1,
            cols: 2,
            samples,
            bits,
            planar,
        }
    }

    #[test]
    fn words_in_either_byte_order() {
        let little = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
        let big = Order {
            big_endian: true,
            swapped_words: false,
        };
        assert_eq!(
            frame_words(&little, shape(1, 16, false), 1, Order::LITTLE).unwrap(),
            [0x0605, 0x0807]
        );
        assert_eq!(
            frame_words(&little, shape(1, 32, false), 0, Order::LITTLE).unwrap(),
            [0x0403_0201, 0x0807_0605]
        );
        assert_eq!(
            frame_words(&little, shape(1, 32, false), 0, big).unwrap(),
            [0x0102_0304, 0x0506_0708]
        );
    }

    #[test]
    fn planes_are_put_pixel_by_pixel() {
        // Two pixels, planar: r r g g b b.
        let bytes = [1, 2, 10, 20, 100, 200];
        assert_eq!(
            frame_words(&bytes, shape(3, 8, true), 0, Order::LITTLE).unwrap(),
            [1, 10, 100, 2, 20, 200]
        );
        assert_eq!(
            frame_words(&bytes, shape(3, 8, false), 0, Order::LITTLE).unwrap(),
            [1, 2, 10, 20, 100, 200]
        );
    }

    #[test]
    fn bits_are_read_from_the_lowest_and_frames_are_not_padded() {
        // 2 pixels a frame: frame 1 is bits 2 and 3 of the first byte.
        let bytes = [0b0000_1001];
        assert_eq!(
            frame_words(&bytes, shape(1, 1, false), 0, Order::LITTLE).unwrap(),
            [1, 0]
        );
        assert_eq!(
            frame_words(&bytes, shape(1, 1, false), 1, Order::LITTLE).unwrap(),
            [0, 1]
        );
    }

    #[test]
    fn bytes_in_big_endian_words_are_read_second_first() {
        let swapped = Order {
            big_endian: true,
            swapped_words: true,
        };
        assert_eq!(
            frame_words(&[7, 9], shape(1, 8, false), 0, swapped).unwrap(),
            [9, 7]
        );
    }

    #[test]
    fn short_data_and_odd_sizes_are_errors() {
        assert!(frame_words(&[1, 2, 3], shape(1, 16, false), 0, Order::LITTLE).is_err());
        assert!(frame_words(&[1, 2, 3, 4], shape(1, 16, false), 1, Order::LITTLE).is_err());
        assert!(frame_words(&[1; 8], shape(1, 12, false), 0, Order::LITTLE).is_err());
    }
}
