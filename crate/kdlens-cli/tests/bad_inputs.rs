//! A generated corpus of awkward and hostile image files (no third-party files), each fed to
//! `kdlens explain`: odd but valid images are explained, broken ones end in a clear error that
//! names the file — never a panic, never unbounded memory.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../www/model/model.kdlens")
}

fn explain(image: &Path, run: &Path) -> (bool, String, Option<serde_json::Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_kdlens"))
        .env("BURN_DEVICE", "flex")
        .args([
            "--run-dir",
            run.to_str().unwrap(),
            "explain",
            image.to_str().unwrap(),
            "--model",
            model().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{}: {text}", image.display());
    let stem = image
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .replace('.', "_");
    let json = std::fs::read(run.join(stem).join("explanation.json"))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    (out.status.success(), text, json)
}

fn png_bytes(
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    palette: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if let Some(p) = palette {
            encoder.set_palette(p.to_vec());
        }
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
    }
    out
}

/// A JPEG with an EXIF APP1 segment whose orientation tag is `orientation`.
fn jpeg_with_orientation(width: u16, height: u16, orientation: u8) -> Vec<u8> {
    let mut jpeg = Vec::new();
    let pixels: Vec<u8> = (0..width as usize * height as usize)
        .flat_map(|i| [(i % 251) as u8, 80, 160])
        .collect();
    jpeg_encoder::Encoder::new(&mut jpeg, 90)
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let mut exif = b"Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
    exif.extend_from_slice(&[orientation, 0, 0, 0, 0, 0, 0, 0]);
    let mut out = vec![0xff, 0xd8, 0xff, 0xe1];
    out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG whose header claims `side`×`side` pixels (a decompression bomb's calling card).
fn png_claiming(side: u32) -> Vec<u8> {
    let mut out = png_bytes(
        1,
        1,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &[0],
        None,
    );
    out[16..20].copy_from_slice(&side.to_be_bytes());
    out[20..24].copy_from_slice(&side.to_be_bytes());
    let crc = crc32(&out[12..29]);
    out[29..33].copy_from_slice(&crc.to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    c ^ 0xffff_ffff
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path
}

#[test]
fn odd_but_valid_images_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let gray16: Vec<u8> = (0..24 * 24)
        .flat_map(|i: u32| ((i * 97) as u16).to_be_bytes())
        .collect();
    let rgb16: Vec<u8> = (0..20 * 10 * 3)
        .flat_map(|i: u32| ((i * 331) as u16).to_be_bytes())
        .collect();
    let palette: Vec<u8> = (0..16).flat_map(|i| [i * 16, 255 - i * 16, 128]).collect();
    let indexed: Vec<u8> = (0..30 * 30).map(|i| (i % 16) as u8).collect();
    let gray_alpha: Vec<u8> = (0..17 * 9)
        .flat_map(|i| [(i * 3 % 256) as u8, (i % 256) as u8])
        .collect();
    let cmyk: Vec<u8> = (0..32 * 16)
        .flat_map(|i| [(i % 200) as u8, 40, 90, 10])
        .collect();
    let mut cmyk_jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut cmyk_jpeg, 90)
        .encode(&cmyk, 32, 16, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let cases = [
        (
            "gray16.png",
            png_bytes(
                24,
                24,
                png::ColorType::Grayscale,
                png::BitDepth::Sixteen,
                &gray16,
                None,
            ),
            [24, 24],
        ),
        (
            "rgb16.png",
            png_bytes(
                20,
                10,
                png::ColorType::Rgb,
                png::BitDepth::Sixteen,
                &rgb16,
                None,
            ),
            [20, 10],
        ),
        (
            "palette.png",
            png_bytes(
                30,
                30,
                png::ColorType::Indexed,
                png::BitDepth::Eight,
                &indexed,
                Some(&palette),
            ),
            [30, 30],
        ),
        (
            "gray_alpha.png",
            png_bytes(
                17,
                9,
                png::ColorType::GrayscaleAlpha,
                png::BitDepth::Eight,
                &gray_alpha,
                None,
            ),
            [17, 9],
        ),
        (
            "one_pixel.png",
            png_bytes(
                1,
                1,
                png::ColorType::Rgb,
                png::BitDepth::Eight,
                &[200, 10, 10],
                None,
            ),
            [1, 1],
        ),
        (
            "thin.png",
            png_bytes(
                4000,
                1,
                png::ColorType::Grayscale,
                png::BitDepth::Eight,
                &vec![90; 4000],
                None,
            ),
            [4000, 1],
        ),
        ("cmyk.jpg", cmyk_jpeg, [32, 16]),
        ("rotated.jpg", jpeg_with_orientation(40, 20, 6), [20, 40]),
    ];
    for (name, bytes, size) in cases {
        let path = write(dir.path(), name, &bytes);
        let (ok, text, json) = explain(&path, &dir.path().join(format!("run-{name}")));
        assert!(ok, "{name}: {text}");
        let json = json.unwrap();
        assert_eq!(
            [&json["image"]["width"], &json["image"]["height"]],
            [size[0], size[1]],
            "{name}: decoded size (EXIF orientation applied)"
        );
        assert_eq!(
            json["image"]["name"], name,
            "the report names the file, not its folder"
        );
        let p: f64 = json["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((p - 1.0).abs() < 1e-4, "{name}");
    }
}

#[test]
fn broken_and_hostile_files_end_in_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let good_png = png_bytes(
        16,
        16,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &[50; 16 * 16 * 3],
        None,
    );
    let good_jpeg = jpeg_with_orientation(16, 16, 1);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.png", vec![], "not an image"),
        (
            "truncated.png",
            good_png[..good_png.len() / 2].to_vec(),
            "corrupt or truncated",
        ),
        (
            "truncated.jpg",
            good_jpeg[..good_jpeg.len() / 2].to_vec(),
            "corrupt or truncated",
        ),
        (
            "text.jpg",
            b"Dear colleague, please find the scan attached.\n".to_vec(),
            "not an image",
        ),
        ("bomb.png", png_claiming(100_000), "too large"),
    ];
    for (name, bytes, expected) in cases {
        let path = write(dir.path(), name, &bytes);
        let (ok, text, _) = explain(&path, &dir.path().join(format!("run-{name}")));
        assert!(!ok, "{name} was accepted");
        assert!(
            text.contains(name) && text.contains(expected),
            "{name}: {text}"
        );
    }
}
