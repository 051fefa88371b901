//! Encapsulated frames that kdlens decodes without dicom-rs' codecs: JPEG-LS (dicom-rs' decoder
//! is CharLS, in C) through `pure_jpegls`, 12-bit lossy JPEG (process 4; jpeg-decoder reads
//! 8-bit lossy JPEG only) through `libjpeg-turbo-rs`, and RGB JPEG without colour markers, which
//! dicom-rs converts from YCbCr although the file says its samples are RGB. Both crates are pure
//! Rust and build for the page; chosen after decoding the corpora's files against pydicom
//! (JPEG-LS exactly equal, 12-bit JPEG within ±1 — the rounding of another inverse DCT).

use std::borrow::Cow;

use dicom_object::mem::InMemElement;
use dicom_pixeldata::PhotometricInterpretation;

use super::dicom_native::Shape;
use crate::{Error, Result};

const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
const JPEG_LS_NEAR_LOSSLESS: &str = "1.2.840.10008.1.2.4.81";

/// Frame `frame` of encapsulated pixel data `element` in transfer syntax `uid`, decoded by kdlens
/// into stored words pixel by pixel, with the photometric interpretation they are in; `None` when
/// dicom-rs' codecs decode it.
pub(super) fn decode_frame(
    element: &InMemElement,
    uid: &str,
    frames: usize,
    frame: usize,
    shape: Shape,
    photometric: &PhotometricInterpretation,
) -> Result<Option<(Vec<u32>, PhotometricInterpretation)>> {
    let is_jpeg_ls = uid == JPEG_LS_LOSSLESS || uid == JPEG_LS_NEAR_LOSSLESS;
    if !is_jpeg_ls && uid != JPEG_BASELINE && uid != JPEG_EXTENDED {
        return Ok(None);
    }
    let codestream = frame_codestream(element, frames, frame)?;
    if is_jpeg_ls {
        return jpeg_ls(&codestream, shape).map(|w| Some((w, photometric.clone())));
    }
    let header = JpegHeader::read(&codestream)?;
    let rgb_as_stored = shape.samples == 3
        && *photometric == PhotometricInterpretation::Rgb
        && !header.jfif
        && !header.adobe;
    if header.precision != 12 && !rgb_as_stored {
        return Ok(None);
    }
    if [header.rows, header.cols, header.components] != [shape.rows, shape.cols, shape.samples] {
        return Err(Error::Decode(
            "the JPEG frame's size or components differ from the header's".into(),
        ));
    }
    if header.precision == 12 {
        return jpeg_12bit(&codestream, shape).map(|w| Some((w, photometric.clone())));
    }
    jpeg_rgb(&codestream).map(|w| Some((w, PhotometricInterpretation::Rgb)))
}

/// The codestream of frame `frame`: its fragment when there is one per frame, all fragments of a
/// single frame, else the fragments the Basic Offset Table assigns to it (PS3.5 A.4).
fn frame_codestream(element: &InMemElement, frames: usize, frame: usize) -> Result<Cow<'_, [u8]>> {
    let missing = || {
        Error::Decode(format!(
            "the pixel data holds no fragments for frame {frame}"
        ))
    };
    let fragments = element.fragments().ok_or_else(missing)?;
    if fragments.len() == frames {
        return Ok(Cow::Borrowed(&fragments[frame][..]));
    }
    if frames == 1 {
        return Ok(Cow::Owned(fragments.concat()));
    }
    let offsets = element.offset_table().unwrap_or_default();
    let (Some(&start), end) = (offsets.get(frame), offsets.get(frame + 1).copied()) else {
        return Err(Error::Decode(
            "cannot tell which fragments belong to which frame (no Basic Offset Table)".into(),
        ));
    };
    // An offset counts each fragment's 8-byte item header.
    let mut at = 0u64;
    let mut codestream = Vec::new();
    for fragment in fragments {
        if at >= u64::from(start) && end.is_none_or(|end| at < u64::from(end)) {
            codestream.extend_from_slice(fragment);
        }
        at += 8 + fragment.len() as u64;
    }
    if codestream.is_empty() {
        return Err(missing());
    }
    Ok(Cow::Owned(codestream))
}

/// A JPEG-LS frame (one component; `pure_jpegls` 2.0 decodes no other).
fn jpeg_ls(codestream: &[u8], shape: Shape) -> Result<Vec<u32>> {
    if shape.samples != 1 {
        return Err(Error::Decode(
            "colour JPEG-LS is not supported: the one pure-Rust JPEG-LS decoder (pure_jpegls) \
             reads one component"
                .into(),
        ));
    }
    let (samples, _, _) = jpegls::decode(codestream, shape.cols as u32, shape.rows as u32)
        .map_err(|_| Error::Decode("cannot decode the JPEG-LS pixel data".into()))?;
    Ok(samples.into_iter().map(u32::from).collect())
}

/// A 12-bit lossy JPEG frame (one component).
fn jpeg_12bit(codestream: &[u8], shape: Shape) -> Result<Vec<u32>> {
    if shape.samples != 1 {
        return Err(Error::Decode("12-bit colour JPEG is not supported".into()));
    }
    let image = libjpeg_turbo_rs::decompress_12bit(codestream)
        .map_err(|_| Error::Decode("cannot decode the 12-bit JPEG pixel data".into()))?;
    if [image.height, image.width, image.num_components] != [shape.rows, shape.cols, 1] {
        return Err(Error::Decode(
            "the 12-bit JPEG frame's size differs from the header's".into(),
        ));
    }
    // Samples are 0 ..= 4095.
    Ok(image.data.into_iter().map(|v| v.max(0) as u32).collect())
}

/// An 8-bit three-component JPEG frame whose samples are RGB, taken without colour conversion.
fn jpeg_rgb(codestream: &[u8]) -> Result<Vec<u32>> {
    let mut decoder = jpeg_decoder::Decoder::new(codestream);
    decoder.set_color_transform(jpeg_decoder::ColorTransform::RGB);
    let pixels = decoder
        .decode()
        .map_err(|_| Error::Decode("cannot decode the JPEG pixel data".into()))?;
    Ok(pixels.into_iter().map(u32::from).collect())
}

/// What a JPEG codestream's marker segments before its frame header say: the frame's sample
/// precision, size and components, and whether a JFIF (APP0) or Adobe (APP14) segment is there —
/// the only signs of a colour transform inside the stream (ITU-T T.871, Adobe TN 5116). Without
/// either, the file's photometric interpretation says what the samples are.
#[derive(Debug, PartialEq)]
struct JpegHeader {
    precision: u8,
    rows: usize,
    cols: usize,
    components: usize,
    jfif: bool,
    adobe: bool,
}

impl JpegHeader {
    fn read(codestream: &[u8]) -> Result<Self> {
        let bad = || Error::Decode("the JPEG frame has no readable frame header".into());
        if codestream.get(..2) != Some(&[0xFF, 0xD8]) {
            return Err(bad());
        }
        let (mut at, mut jfif, mut adobe) = (2, false, false);
        loop {
            let segment = codestream.get(at..at + 4).ok_or_else(bad)?;
            if segment[0] != 0xFF {
                return Err(bad());
            }
            let marker = segment[1];
            let length = usize::from(u16::from_be_bytes([segment[2], segment[3]]));
            let body = codestream.get(at + 4..at + 2 + length).ok_or_else(bad)?;
            match marker {
                0xE0 => jfif |= body.starts_with(b"JFIF\0"),
                // A whole Adobe segment (12 bytes, its transform flag last); a shorter one says
                // nothing, as libjpeg reads it.
                0xEE => adobe |= body.starts_with(b"Adobe") && body.len() >= 12,
                // SOF0–SOF15 but DHT (C4), JPG (C8) and DAC (CC).
                0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                    let [precision, r1, r0, c1, c0, components, ..] = body[..] else {
                        return Err(bad());
                    };
                    return Ok(Self {
                        precision,
                        rows: usize::from(u16::from_be_bytes([r1, r0])),
                        cols: usize::from(u16::from_be_bytes([c1, c0])),
                        components: usize::from(components),
                        jfif,
                        adobe,
                    });
                }
                _ => {}
            }
            at += 2 + length;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, the given segments (marker, body), then a frame header.
    fn stream(segments: &[(u8, &[u8])], precision: u8) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        let frame: &[u8] = &[precision, 0, 3, 0, 5, 1, 1, 0x11, 0];
        for (marker, body) in segments.iter().chain([(0xC1u8, frame)].iter()) {
            out.extend([0xFF, *marker]);
            out.extend(((body.len() + 2) as u16).to_be_bytes());
            out.extend_from_slice(body);
        }
        out
    }

    #[test]
    fn the_frame_header_and_colour_markers_are_read() {
        let header = JpegHeader::read(&stream(&[(0xE0, b"JFIF\0\x01\x02")], 12)).unwrap();
        assert_eq!(
            header,
            JpegHeader {
                precision: 12,
                rows: 3,
                cols: 5,
                components: 1,
                jfif: true,
                adobe: false,
            }
        );
        let adobe = b"Adobe\0\x64\0\0\0\0\x01";
        let header = JpegHeader::read(&stream(&[(0xC4, &[0; 4]), (0xEE, adobe)], 8)).unwrap();
        assert!(header.adobe && !header.jfif && header.precision == 8);
        // A cut-short Adobe segment is no sign of a colour transform.
        let header = JpegHeader::read(&stream(&[(0xEE, &adobe[..9])], 8)).unwrap();
        assert!(!header.adobe);
    }

    #[test]
    fn broken_headers_are_errors() {
        let good = stream(&[], 8);
        for bad in [&good[..1], &good[..6], b"\xFF\xD8\x00\x00\x00\x00"] {
            assert!(JpegHeader::read(bad).is_err());
        }
        // A segment stating more than follows.
        let mut long = good.clone();
        long[4..6].copy_from_slice(&500u16.to_be_bytes());
        assert!(JpegHeader::read(&long).is_err());
    }
}
