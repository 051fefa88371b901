//! Decoding image files into RGBA pixels, with limits that keep a hostile file from exhausting
//! memory.

use std::{io::BufReader, path::Path};

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use kdlens::image::RgbaImage;

/// Largest accepted side of a decoded image, in pixels.
pub const MAX_SIDE: u32 = 12_000;
/// Largest allocation a decoder may make, in bytes.
const MAX_ALLOC: u64 = 1 << 30;

/// Decodes PNG, JPEG, BMP, WebP, TIFF or GIF (first frame) — grayscale, RGB, RGBA, palette or
/// 16-bit — into 8-bit RGBA, honouring the EXIF orientation of JPEG, PNG, WebP and TIFF files.
/// The error says why the file cannot be used (the caller adds the path).
pub fn decode_file(path: &Path) -> Result<RgbaImage, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    decode(reader)
}

fn decode<R: std::io::BufRead + std::io::Seek>(
    mut reader: ImageReader<R>,
) -> Result<RgbaImage, String> {
    if reader.format().is_none() {
        return Err("not an image in a supported format (PNG, JPEG, BMP, WebP, TIFF, GIF)".into());
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
    RgbaImage::new(width as usize, height as usize, rgba.into_raw()).map_err(|e| e.to_string())
}

fn describe(error: image::ImageError) -> String {
    match error {
        image::ImageError::Limits(e) => format!(
            "image too large to decode safely ({e}; the limit is {MAX_SIDE} pixels per side)"
        ),
        image::ImageError::Decoding(e) => format!("corrupt or truncated image: {e}"),
        image::ImageError::Unsupported(e) => format!("unsupported image: {e}"),
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "corrupt or truncated image: the file ends before the picture does".into()
        }
        other => other.to_string(),
    }
}
