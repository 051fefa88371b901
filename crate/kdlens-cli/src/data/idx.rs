//! The IDX format of (Fashion-)MNIST: big-endian header, then raw bytes.

use std::{io::Read, path::Path, sync::Arc};

use anyhow::{Context, Result, bail};
use kdlens::image::RgbaImage;

/// Reads a gzip-compressed (or plain) IDX file.
fn read(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{}: corrupt gzip stream", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn header(bytes: &[u8], path: &Path, magic: u32, dims: usize) -> Result<Vec<usize>> {
    let word = |i: usize| -> Result<u32> {
        bytes
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
            .with_context(|| format!("{}: file ends inside the IDX header", path.display()))
    };
    let found = word(0)?;
    if found != magic {
        bail!(
            "{}: not an IDX file of the expected kind (magic {found:#010x}, expected {magic:#010x})",
            path.display()
        );
    }
    let sizes: Vec<usize> = (1..=dims)
        .map(|i| word(i).map(|v| v as usize))
        .collect::<Result<_>>()?;
    let expected = 4 * (dims + 1) + sizes.iter().product::<usize>();
    if bytes.len() != expected {
        bail!(
            "{}: IDX header promises {expected} bytes, the file has {}",
            path.display(),
            bytes.len()
        );
    }
    Ok(sizes)
}

/// Images of an `idx3-ubyte` file as RGBA (gray replicated, opaque).
pub fn read_images(path: &Path) -> Result<Vec<Arc<RgbaImage>>> {
    let bytes = read(path)?;
    let sizes = header(&bytes, path, 0x0000_0803, 3)?;
    let (count, h, w) = (sizes[0], sizes[1], sizes[2]);
    let pixels = &bytes[16..];
    (0..count)
        .map(|i| {
            let rgba = pixels[i * h * w..(i + 1) * h * w]
                .iter()
                .flat_map(|&v| [v, v, v, 255])
                .collect();
            Ok(Arc::new(RgbaImage::new(w, h, rgba)?))
        })
        .collect()
}

/// Labels of an `idx1-ubyte` file.
pub fn read_labels(path: &Path) -> Result<Vec<usize>> {
    let bytes = read(path)?;
    header(&bytes, path, 0x0000_0801, 1)?;
    Ok(bytes[8..].iter().map(|&v| v as usize).collect())
}
