//! Decoding image files — and DICOM / NIfTI scans through [`super::scan`] — into RGBA pixels, with
//! limits that keep a hostile file from exhausting memory. Native tools use it; the browser decodes
//! ordinary images with `createImageBitmap` instead.

use std::{
    io::{BufRead, Cursor, Read, Seek},
    path::Path,
};

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use super::{
    RgbaImage,
    scan::{ScanFacts, ScanOptions, decode_scan, sniff},
};
use crate::{Error, Result};

/// Largest accepted side of a decoded image, in pixels.
pub const MAX_SIDE: u32 = 12_000;
/// Largest allocation a decoder may make, in bytes (1 GiB).
pub const MAX_ALLOC: u64 = 1 << 30;

/// Decodes the image file at `path` (see [`decode_bytes`] for the formats). The error says why
/// the file cannot be used; the caller adds the path.
pub fn decode_file(path: &Path) -> Result<RgbaImage> {
    decode_file_with(path, &ScanOptions::default()).map(|d| d.image)
}

/// Decodes the image or scan file at `path`, a scan as `options` say.
pub fn decode_file_with(path: &Path, options: &ScanOptions) -> Result<Decoded> {
    let file = std::fs::File::open(path).map_err(|e| Error::Decode(format!("cannot open: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_ALLOC + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Decode(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_ALLOC {
        return Err(Error::Decode(format!(
            "the file is larger than {MAX_ALLOC} bytes, the most kdlens reads"
        )));
    }
    decode_bytes_with(&bytes, options)
}

/// Decodes PNG, JPEG, BMP, WebP, TIFF or GIF (first frame) bytes — grayscale, RGB, RGBA, palette
/// or 16-bit — into 8-bit RGBA, honouring the EXIF orientation of JPEG, PNG, WebP and TIFF
/// images; DICOM and NIfTI scans with the default [`ScanOptions`]. Images larger than
/// [`MAX_SIDE`] per side or needing more than [`MAX_ALLOC`] bytes are refused before their pixels
/// are allocated.
pub fn decode_bytes(bytes: &[u8]) -> Result<RgbaImage> {
    decode_bytes_with(bytes, &ScanOptions::default()).map(|d| d.image)
}

/// An image as decoded, and what was read from it when it is a scan.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The 8-bit RGBA pixels.
    pub image: RgbaImage,
    /// The scan's acquisition facts and the window, frame and slice shown (DICOM and NIfTI
    /// only).
    pub scan: Option<ScanFacts>,
}

/// [`decode_bytes`], a scan (told by its magic numbers, not its name) as `options` say.
pub fn decode_bytes_with(bytes: &[u8], options: &ScanOptions) -> Result<Decoded> {
    if sniff(bytes).is_some() {
        let scan = decode_scan(bytes, options)?;
        return Ok(Decoded {
            image: scan.image,
            scan: Some(scan.facts),
        });
    }
    Ok(Decoded {
        image: decode(Cursor::new(bytes))?,
        scan: None,
    })
}

fn decode<R: BufRead + Seek>(input: R) -> Result<RgbaImage> {
    let mut reader = ImageReader::new(input)
        .with_guessed_format()
        .map_err(|e| Error::Decode(format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(Error::Decode(
            "not an image in a supported format (PNG, JPEG, BMP, WebP, TIFF, GIF, DICOM, NIfTI)"
                .into(),
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(describe)?;
    let orientation = decoder.orientation().map_err(describe)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(describe)?;
    image.apply_orientation(orientation);
    let rgba = image.to_rgba8();
    let (width, height) = rgba.dimensions();
    RgbaImage::new(width as usize, height as usize, rgba.into_raw())
}

fn describe(error: image::ImageError) -> Error {
    Error::Decode(match error {
        image::ImageError::Limits(e) => format!(
            "image too large to decode safely ({e}; the limit is {MAX_SIDE} pixels per side)"
        ),
        image::ImageError::Decoding(e) => format!("corrupt or truncated image: {e}"),
        image::ImageError::Unsupported(e) => format!("unsupported image: {e}"),
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "corrupt or truncated image: the file ends before the picture does".into()
        }
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_not_an_image() {
        let err = decode_bytes(b"hello, this is not a picture").unwrap_err();
        assert!(err.to_string().contains("not an image"), "{err}");
    }

    #[test]
    fn a_bmp_decodes_to_rgba() {
        // 2×1 24-bit BMP: a blue pixel then a red one (rows are BGR, padded to 4 bytes).
        let mut bmp = Vec::new();
        bmp.extend_from_slice(b"BM");
        bmp.extend_from_slice(&(54u32 + 8).to_le_bytes());
        bmp.extend_from_slice(&[0; 4]);
        bmp.extend_from_slice(&54u32.to_le_bytes());
        bmp.extend_from_slice(&40u32.to_le_bytes());
        bmp.extend_from_slice(&2i32.to_le_bytes());
        bmp.extend_from_slice(&1i32.to_le_bytes());
        bmp.extend_from_slice(&1u16.to_le_bytes());
        bmp.extend_from_slice(&24u16.to_le_bytes());
        bmp.extend_from_slice(&[0; 24]);
        bmp.extend_from_slice(&[255, 0, 0, 0, 0, 255, 0, 0]);
        let image = decode_bytes(&bmp).unwrap();
        assert_eq!((image.width(), image.height()), (2, 1));
        assert_eq!(image.pixels(), &[0, 0, 255, 255, 255, 0, 0, 255]);
    }
}
