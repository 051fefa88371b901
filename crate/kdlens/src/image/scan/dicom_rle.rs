//! RLE Lossless frames (PS3.5 Annex G), unpacked by kdlens: one fragment per frame, a 64-byte
//! header of segment offsets, one PackBits segment per byte of each sample, most significant byte
//! first. dicom-rs 0.10.1 unpacks 8- and 16-bit samples only and panics on some malformed
//! fragments (found by fuzzing); this reader takes 8, 16 and 32 bits, checks every offset and
//! length against the fragment, and never reads outside it.

use super::dicom_native::Shape;
use crate::{Error, Result};

/// The size of the RLE header: the segment count and 15 offsets, 32-bit little endian.
const HEADER: usize = 64;

/// The samples of one RLE frame (`fragment`) as little-endian bytes, pixel by pixel (planar
/// configuration 0 whatever the header says: RLE stores colour by plane, in its segments).
pub(super) fn unpack_frame(fragment: &[u8], shape: Shape) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::Decode(format!("corrupt RLE pixel data: {why}"));
    if !matches!(shape.bits, 8 | 16 | 32) {
        return Err(bad("RLE holds 8-, 16- or 32-bit samples only"));
    }
    let width = shape.bits / 8;
    let segments = shape.samples * width;
    let offset = |i: usize| {
        fragment
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if fragment.len() < HEADER || offset(0) != Some(segments) {
        return Err(bad("the header does not match the image"));
    }
    let mut bounds: Vec<usize> = (1..=segments).filter_map(offset).collect();
    bounds.push(fragment.len());
    let plane = shape.rows * shape.cols;
    let mut out = vec![0u8; plane * segments];
    for (segment, pair) in bounds.windows(2).enumerate() {
        let data = fragment
            .get(pair[0]..pair[1])
            .filter(|_| pair[0] >= HEADER)
            .ok_or_else(|| bad("a segment lies outside the fragment"))?;
        let bytes = unpack_bits(data, plane);
        if bytes.len() < plane {
            return Err(bad("a segment unpacks to less than a plane"));
        }
        let (sample, significance) = (segment / width, segment % width);
        // The first segment of a sample holds its most significant byte.
        let at = sample * width + (width - 1 - significance);
        for (pixel, &b) in bytes.iter().enumerate() {
            out[pixel * segments + at] = b;
        }
    }
    Ok(out)
}

/// PackBits-encoded `data` unpacked (PS3.5 G.3.1), at most `limit` bytes: a header byte `n` copies
/// `n + 1` literal bytes (0 ≤ n ≤ 127), repeats the next byte `257 − n` times (129 ≤ n ≤ 255)
/// or does nothing (128).
fn unpack_bits(data: &[u8], limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(limit);
    let mut at = 0;
    while let Some(&n) = data.get(at) {
        if out.len() >= limit {
            break;
        }
        match n {
            0..=127 => {
                let end = (at + 2 + n as usize).min(data.len());
                out.extend_from_slice(&data[at + 1..end]);
                at = end;
            }
            128 => at += 1,
            _ => {
                if let Some(&b) = data.get(at + 1) {
                    out.extend(std::iter::repeat_n(b, 257 - n as usize));
                }
                at += 2;
            }
        }
    }
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fragment of `segments` (their offsets in the header).
    fn fragment(segments: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0u8; HEADER];
        out[..4].copy_from_slice(&(segments.len() as u32).to_le_bytes());
        for (i, segment) in segments.iter().enumerate() {
            let at = out.len() as u32;
            out[4 + 4 * i..8 + 4 * i].copy_from_slice(&at.to_le_bytes());
            out.extend_from_slice(segment);
        }
        out
    }

    fn shape(samples: usize, bits: usize) -> Shape {
        Shape {
            rows: 1,
            cols: 3,
            samples,
            bits,
            planar: false,
        }
    }

    #[test]
    fn packbits_by_hand() {
        // Two literals, then 9 repeated three times (257 − 254), a no-op, one more literal.
        let data = [1, 5, 6, 254, 9, 128, 0, 7];
        assert_eq!(unpack_bits(&data, 100), [5, 6, 9, 9, 9, 7]);
        assert_eq!(unpack_bits(&data, 4), [5, 6, 9, 9]);
        // A literal run stating more than follows keeps what is there.
        assert_eq!(unpack_bits(&[5, 1, 2], 100), [1, 2]);
    }

    #[test]
    fn bytes_of_a_sample_come_most_significant_first() {
        // One 16-bit sample a pixel: high bytes [1, 2, 3], low bytes [0xA, 0xB, 0xC].
        let data = fragment(&[&[2, 1, 2, 3], &[2, 0xA, 0xB, 0xC]]);
        assert_eq!(
            unpack_frame(&data, shape(1, 16)).unwrap(),
            [0xA, 1, 0xB, 2, 0xC, 3]
        );
        // Three 8-bit samples a pixel, stored by plane, come out by pixel.
        let data = fragment(&[&[2, 1, 2, 3], &[2, 4, 5, 6], &[2, 7, 8, 9]]);
        assert_eq!(
            unpack_frame(&data, shape(3, 8)).unwrap(),
            [1, 4, 7, 2, 5, 8, 3, 6, 9]
        );
    }

    #[test]
    fn malformed_fragments_are_errors() {
        let good = fragment(&[&[2, 1, 2, 3]]);
        assert!(unpack_frame(&good, shape(1, 8)).is_ok());
        // Too few segments for the samples, a short segment, an offset past the end.
        assert!(unpack_frame(&good, shape(1, 16)).is_err());
        assert!(unpack_frame(&fragment(&[&[1, 1, 2]]), shape(1, 8)).is_err());
        let mut past = good.clone();
        past[4..8].copy_from_slice(&1000u32.to_le_bytes());
        assert!(unpack_frame(&past, shape(1, 8)).is_err());
        assert!(unpack_frame(&good[..10], shape(1, 8)).is_err());
    }
}
