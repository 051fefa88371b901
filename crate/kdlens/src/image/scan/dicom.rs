//! DICOM Part 10 files: one frame through the modality LUT and the VOI LUT or window, as PS3.3
//! C.11 describes and pydicom's `apply_modality_lut` / `apply_voi_lut` compute.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, mem::InMemElement};
use dicom_pixeldata::{PhotometricInterpretation, PixelDecoder, PlanarConfiguration};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::{
    Ramp, ScanFacts, ScanFormat, ScanImage, ScanOptions, WindowChoice,
    dicom_native::{Order, Shape},
    dicom_open::{EXPLICIT_VR_BIG_ENDIAN, printable},
    shared::{check_size, chosen_ramp, gray_image, pick, value_range},
};
use crate::{Error, Result, image::RgbaImage};

/// Decodes one frame of the DICOM file in `bytes`.
pub(super) fn decode(bytes: &[u8], options: &ScanOptions) -> Result<ScanImage> {
    let mut object = super::dicom_open::open(bytes)?;
    let big_endian = transfer_syntax(&object) == EXPLICIT_VR_BIG_ENDIAN;
    super::dicom_un::read_known_vrs(&mut object, big_endian)?;
    let layout = Layout::read(&object)?;
    let frame = pick(options.frame, layout.frames, "frame")?;
    let facts = |window, window_source, value_range| ScanFacts {
        format: ScanFormat::Dicom,
        modality: modality(&object),
        size: [layout.rows, layout.cols],
        frames: layout.frames,
        frame,
        plane: None,
        slices: None,
        slice: None,
        window,
        window_source,
        value_range,
    };
    if let Some(image) = native_ybr_422(&object, &layout, frame)? {
        return Ok(ScanImage {
            image,
            facts: facts(None, None, None),
        });
    }
    let size = [layout.rows, layout.cols];
    let (words, photometric, bits) = match frame_samples(&object, &layout, frame, big_endian)? {
        Samples::Values(values) => {
            let (image, window, source, range) =
                monochrome(&object, frame, options.window, size, values, false)?;
            return Ok(ScanImage {
                image,
                facts: facts(window, Some(source), range),
            });
        }
        Samples::Words {
            words,
            photometric,
            bits,
        } => (words, photometric, bits),
    };
    match photometric {
        PhotometricInterpretation::PaletteColor => {
            let indices = words
                .iter()
                .map(|&w| u16::try_from(w))
                .collect::<std::result::Result<Vec<u16>, _>>()
                .map_err(|_| Error::Decode("palette indices wider than 16 bits".into()))?;
            Ok(ScanImage {
                image: super::dicom_palette::palette_image(&object, &indices, size)?,
                facts: facts(None, None, None),
            })
        }
        PhotometricInterpretation::Monochrome1 | PhotometricInterpretation::Monochrome2 => {
            let invert = photometric == PhotometricInterpretation::Monochrome1;
            let values = StoredBits::read(&object)?.values(&words);
            let (image, window, source, range) =
                monochrome(&object, frame, options.window, size, values, invert)?;
            Ok(ScanImage {
                image,
                facts: facts(window, Some(source), range),
            })
        }
        _ => Ok(ScanImage {
            image: color_image(&words, &photometric, bits, size)?,
            facts: facts(None, None, None),
        }),
    }
}

/// One frame's samples as decoded: stored words (with the photometric interpretation and Bits
/// Allocated they are to be read with), or values of Float / Double Float Pixel Data.
enum Samples {
    Words {
        words: Vec<u32>,
        photometric: PhotometricInterpretation,
        bits: usize,
    },
    Values(Vec<f32>),
}

/// Frame `frame`'s samples, pixel by pixel: native and RLE data read by kdlens, float data as
/// stored, other encapsulated data decoded by dicom-rs (which may turn YBR into RGB, and says so).
fn frame_samples(
    object: &DefaultDicomObject,
    layout: &Layout,
    frame: usize,
    big_endian: bool,
) -> Result<Samples> {
    let element = layout.pixel_element(object)?;
    if layout.pixels != PixelKind::Integer {
        let count = layout.shape().frame_samples();
        let values = element
            .to_multi_float64()
            .map_err(|_| Error::Decode("cannot read the float pixel data".into()))?;
        let values = values
            .get(frame * count..(frame + 1) * count)
            .ok_or_else(|| Error::Decode("the pixel data is shorter than its frames".into()))?;
        return Ok(Samples::Values(values.iter().map(|&v| v as f32).collect()));
    }
    let as_stored = |words| Samples::Words {
        words,
        photometric: layout.photometric.clone(),
        bits: layout.bits,
    };
    let Some(fragments) = element.fragments() else {
        let (bytes, order) = super::dicom_native::file_bytes(element, big_endian)?;
        let words = super::dicom_native::frame_words(&bytes, layout.shape(), frame, order)?;
        return Ok(as_stored(words));
    };
    if transfer_syntax(object) == RLE_LOSSLESS {
        let fragment = fragments.get(frame).ok_or_else(|| {
            Error::Decode("corrupt RLE pixel data: no fragment for the frame".into())
        })?;
        let shape = Shape {
            planar: false,
            ..layout.shape()
        };
        let bytes = super::dicom_rle::unpack_frame(fragment, shape)?;
        let words = super::dicom_native::frame_words(&bytes, shape, 0, Order::LITTLE)?;
        return Ok(as_stored(words));
    }
    let own = super::dicom_codecs::decode_frame(
        element,
        transfer_syntax(object),
        layout.frames,
        frame,
        layout.shape(),
        &layout.photometric,
    )?;
    if let Some((words, photometric)) = own {
        return Ok(Samples::Words {
            words,
            photometric,
            bits: layout.bits,
        });
    }
    check_transfer_syntax(object)?;
    // dicom-rs' messages may quote header text (an unknown photometric interpretation): only
    // this fixed one leaves.
    let cannot = || Error::Decode(format!("cannot decode the pixel data of frame {frame}"));
    let pixels = object
        .decode_pixel_data_frame(frame as u32)
        .map_err(|_| cannot())?;
    let shape = Shape {
        rows: layout.rows,
        cols: layout.cols,
        samples: usize::from(pixels.samples_per_pixel()),
        bits: usize::from(pixels.bits_allocated()),
        planar: pixels.planar_configuration() == PlanarConfiguration::PixelFirst,
    };
    let bytes = pixels.frame_data(0).map_err(|_| cannot())?;
    Ok(Samples::Words {
        words: super::dicom_native::frame_words(bytes, shape, 0, Order::LITTLE)?,
        photometric: pixels.photometric_interpretation().clone(),
        bits: shape.bits,
    })
}

/// A monochrome frame's values (stored values, or float pixel data) through the modality LUT and
/// its display function (inverted for MONOCHROME1): the image, its window and where that came
/// from, and the value range.
#[allow(clippy::type_complexity)]
fn monochrome(
    object: &DefaultDicomObject,
    frame: usize,
    choice: WindowChoice,
    size: [usize; 2],
    values: Vec<f32>,
    invert: bool,
) -> Result<(RgbaImage, Option<[f64; 2]>, String, Option<[f64; 2]>)> {
    let signed = optional_int(object, tags::PIXEL_REPRESENTATION)? == Some(1);
    let values = modality_lut(object, frame, &values, signed)?;
    let (display, window, source) = display_of(object, frame, choice, &values)?;
    let image = gray_image(&values, size, display, invert)?;
    Ok((image, window, source, value_range(&values)))
}

/// An uncompressed YBR_FULL_422 frame (`Y₁ Y₂ Cb Cr` for every two pixels of a row, PS3.3
/// C.7.6.3.1.2), which dicom-rs sizes as three samples per pixel and so cannot cut into frames;
/// `None` for every other file.
fn native_ybr_422(
    object: &DefaultDicomObject,
    layout: &Layout,
    frame: usize,
) -> Result<Option<RgbaImage>> {
    let native = TransferSyntaxRegistry
        .get(
            object
                .meta()
                .transfer_syntax()
                .trim_end_matches(['\0', ' ']),
        )
        .is_some_and(|ts| !ts.is_encapsulated_pixel_data());
    if layout.photometric != PhotometricInterpretation::YbrFull422 || !native {
        return Ok(None);
    }
    let [rows, cols] = [layout.rows, layout.cols];
    if cols % 2 != 0 {
        return Err(Error::Decode(
            "a YBR_FULL_422 image needs an even number of columns".into(),
        ));
    }
    let data = object
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.to_bytes().ok())
        .ok_or_else(|| Error::Decode("the file has no pixel data".into()))?;
    let frame_len = rows * cols * 2;
    let bytes = data
        .get(frame * frame_len..(frame + 1) * frame_len)
        .ok_or_else(|| Error::Decode("the pixel data is shorter than the header says".into()))?;
    let mut out = Vec::with_capacity(rows * cols * 4);
    for group in bytes.chunks_exact(4) {
        let [y1, y2, cb, cr] = [group[0], group[1], group[2], group[3]].map(f64::from);
        for y in [y1, y2] {
            out.extend(ybr_to_rgb([y, cb, cr]));
            out.push(255);
        }
    }
    RgbaImage::new(cols, rows, out).map(Some)
}

/// One YBR_FULL pixel as 8-bit RGB (PS3.3 C.7.6.3.1.2).
fn ybr_to_rgb([y, cb, cr]: [f64; 3]) -> [u8; 3] {
    [
        y + 1.402 * (cr - 128.0),
        y - 0.344136 * (cb - 128.0) - 0.714136 * (cr - 128.0),
        y + 1.772 * (cb - 128.0),
    ]
    .map(|v| v.round().clamp(0.0, 255.0) as u8)
}

/// The image geometry the header claims, checked before any pixel is decoded.
struct Layout {
    rows: usize,
    cols: usize,
    frames: usize,
    samples: usize,
    /// Bits Allocated: 1, 8, 16 or 32 (integers), 32 or 64 (float pixel data).
    bits: usize,
    /// Planar Configuration 1 (colour stored plane by plane).
    planar: bool,
    photometric: PhotometricInterpretation,
    pixels: PixelKind,
}

/// Which of the three pixel data elements holds the image (PS3.3 C.7.6.3.1.4 and C.7.6.24).
#[derive(Debug, Clone, Copy, PartialEq)]
enum PixelKind {
    /// Pixel Data: stored integers.
    Integer,
    /// Float Pixel Data: 32-bit floats.
    Float,
    /// Double Float Pixel Data: 64-bit floats.
    Double,
}

impl PixelKind {
    /// The kind of the file's pixel data, if it has any.
    fn of(object: &DefaultDicomObject) -> Option<Self> {
        [
            (tags::PIXEL_DATA, Self::Integer),
            (tags::FLOAT_PIXEL_DATA, Self::Float),
            (tags::DOUBLE_FLOAT_PIXEL_DATA, Self::Double),
        ]
        .into_iter()
        .find(|(tag, _)| object.get(*tag).is_some())
        .map(|(_, kind)| kind)
    }

    fn tag(self) -> Tag {
        match self {
            Self::Integer => tags::PIXEL_DATA,
            Self::Float => tags::FLOAT_PIXEL_DATA,
            Self::Double => tags::DOUBLE_FLOAT_PIXEL_DATA,
        }
    }

    /// The Bits Allocated this kind allows.
    fn allows(self, bits: usize) -> bool {
        match self {
            Self::Integer => matches!(bits, 1 | 8 | 16 | 32),
            Self::Float => bits == 32,
            Self::Double => bits == 64,
        }
    }
}

impl Layout {
    fn read(object: &DefaultDicomObject) -> Result<Self> {
        let pixels = PixelKind::of(object)
            .ok_or_else(|| Error::Decode("the file has no pixel data".into()))?;
        let rows = required_int(object, tags::ROWS, "Rows")?;
        let cols = required_int(object, tags::COLUMNS, "Columns")?;
        let frames = optional_int(object, tags::NUMBER_OF_FRAMES)?
            .unwrap_or(1)
            .max(1);
        let samples = optional_int(object, tags::SAMPLES_PER_PIXEL)?.unwrap_or(1);
        let bits = required_int(object, tags::BITS_ALLOCATED, "Bits Allocated")?;
        if !pixels.allows(bits) {
            return Err(Error::Decode(format!(
                "{bits}-bit pixels are not supported in {} (1, 8, 16 and 32 bits are, 32 and 64 \
                 in float pixel data)",
                match pixels {
                    PixelKind::Integer => "pixel data",
                    PixelKind::Float | PixelKind::Double => "float pixel data",
                }
            )));
        }
        if !matches!(samples, 1 | 3) || (pixels != PixelKind::Integer && samples != 1) {
            return Err(Error::Decode(format!(
                "{samples} samples per pixel are not supported (1 and 3 are, 1 in float pixel data)"
            )));
        }
        let photometric = photometric(object, pixels)?;
        let planar = samples == 3 && optional_int(object, tags::PLANAR_CONFIGURATION)? == Some(1);
        let values = rows
            .saturating_mul(cols)
            .saturating_mul(samples)
            .saturating_mul(frames);
        check_size([rows, cols], values)?;
        let layout = Self {
            rows,
            cols,
            frames,
            samples,
            bits,
            planar,
            photometric,
            pixels,
        };
        layout.check_native_length(object)?;
        Ok(layout)
    }

    /// How one frame's samples lie in their bytes.
    fn shape(&self) -> Shape {
        Shape {
            rows: self.rows,
            cols: self.cols,
            samples: self.samples,
            bits: self.bits,
            planar: self.planar,
        }
    }

    /// The element holding the pixels.
    fn pixel_element<'a>(&self, object: &'a DefaultDicomObject) -> Result<&'a InMemElement> {
        object
            .get(self.pixels.tag())
            .ok_or_else(|| Error::Decode("the file has no pixel data".into()))
    }

    /// For pixel data stored as it is (not encapsulated), that it holds every frame the header
    /// claims, so that no decoder sizes a buffer for data that is not there.
    fn check_native_length(&self, object: &DefaultDicomObject) -> Result<()> {
        let element = self.pixel_element(object)?;
        if element.fragments().is_some() {
            return Ok(());
        }
        let have = element.to_bytes().map(|b| b.len()).unwrap_or(0);
        // YBR_FULL_422 stores two bytes per pixel in place of three; 1-bit frames are packed.
        let per_pixel_bits = if self.photometric == PhotometricInterpretation::YbrFull422 {
            16
        } else {
            self.samples * self.bits
        };
        let need = (self.frames * self.rows * self.cols * per_pixel_bits).div_ceil(8);
        if have < need {
            return Err(Error::Decode(format!(
                "the pixel data holds {have} bytes where the header's {} frame(s) of {}×{} \
                 need {need}",
                self.frames, self.rows, self.cols
            )));
        }
        Ok(())
    }
}

/// The file's Photometric Interpretation, one of the standard's terms that carry an image (PS3.3
/// C.7.6.3.1.2); float pixel data is MONOCHROME2 whatever it says.
fn photometric(
    object: &DefaultDicomObject,
    pixels: PixelKind,
) -> Result<PhotometricInterpretation> {
    if pixels != PixelKind::Integer {
        return Ok(PhotometricInterpretation::Monochrome2);
    }
    let text = object
        .get(tags::PHOTOMETRIC_INTERPRETATION)
        .and_then(|e| e.to_str().ok())
        .ok_or_else(|| Error::Decode("the file has no Photometric Interpretation".into()))?;
    let term = defined_term(&text, &PHOTOMETRIC_TERMS).ok_or_else(|| {
        Error::Decode("the photometric interpretation is not a defined term".into())
    })?;
    Ok(PhotometricInterpretation::from(term))
}

/// An error unless dicom-rs can decode the file's transfer syntax here; the message names it.
fn check_transfer_syntax(object: &DefaultDicomObject) -> Result<()> {
    let uid = transfer_syntax(object);
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) if ts.can_decode_all() => Ok(()),
        Some(ts) => Err(Error::Decode(format!(
            "the transfer syntax {} ({uid}) is not supported: kdlens decodes uncompressed, \
             deflated, RLE, JPEG baseline, extended and lossless, and JPEG 2000 DICOM",
            ts.name()
        ))),
        None => Err(Error::Decode(format!(
            "unknown transfer syntax {}",
            printable(uid)
        ))),
    }
}

/// The UID of the file's transfer syntax, without padding.
fn transfer_syntax(object: &DefaultDicomObject) -> &str {
    object
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
}

/// The RLE Lossless transfer syntax.
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// Where a sample's value sits in its word (Bits Allocated / Bits Stored / High Bit) and whether
/// it is signed (Pixel Representation 1).
struct StoredBits {
    stored: u32,
    high_bit: u32,
    signed: bool,
}

impl StoredBits {
    fn read(object: &DefaultDicomObject) -> Result<Self> {
        let allocated = required_int(object, tags::BITS_ALLOCATED, "Bits Allocated")? as u32;
        let stored = optional_int(object, tags::BITS_STORED)?.map_or(allocated, |b| b as u32);
        let high_bit =
            optional_int(object, tags::HIGH_BIT)?.map_or(stored.max(1) - 1, |b| b as u32);
        let signed = optional_int(object, tags::PIXEL_REPRESENTATION)? == Some(1);
        if stored == 0 || stored > allocated || high_bit >= allocated || high_bit + 1 < stored {
            return Err(Error::Decode(
                "Bits Stored and High Bit do not fit Bits Allocated".into(),
            ));
        }
        Ok(Self {
            stored,
            high_bit,
            signed,
        })
    }

    /// The stored values of `words` (unsigned words of Bits Allocated bits): the `stored` bits
    /// ending at `high_bit`, sign-extended when signed (PS3.5 8.1.1), so that bits above them
    /// (overlays, junk) do not count.
    fn values(&self, words: &[u32]) -> Vec<f32> {
        let shift = self.high_bit + 1 - self.stored;
        let mask = (1u64 << self.stored) - 1;
        words
            .iter()
            .map(|&w| {
                let bits = (u64::from(w) >> shift) & mask;
                let negative = self.signed && (bits >> (self.stored - 1)) & 1 == 1;
                let value = bits as i64 - if negative { 1i64 << self.stored } else { 0 };
                value as f32
            })
            .collect()
    }
}

/// Stored values through the modality LUT (PS3.3 C.11.1, as pydicom's `apply_modality_lut`): the
/// table of the Modality LUT Sequence when the file has one, else `value · slope + intercept`
/// (Rescale Slope and Intercept; the identity without them). `signed`: Pixel Representation 1.
fn modality_lut(
    object: &DefaultDicomObject,
    frame: usize,
    stored: &[f32],
    signed: bool,
) -> Result<Vec<f32>> {
    if let Some(lut) = Lut::first(
        object,
        frame,
        tags::MODALITY_LUT_SEQUENCE,
        "Modality LUT",
        signed,
    )? {
        return Ok(stored.iter().map(|&v| lut.entry(v as f64) as f32).collect());
    }
    let rescale = |tag| {
        let element = frame_element(
            object,
            frame,
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            tag,
        );
        float_of(element, tag)
    };
    let slope = rescale(tags::RESCALE_SLOPE)?.unwrap_or(1.0);
    let intercept = rescale(tags::RESCALE_INTERCEPT)?.unwrap_or(0.0);
    Ok(stored
        .iter()
        .map(|&v| (v as f64 * slope + intercept) as f32)
        .collect())
}

/// The display function of a frame's modality values (each to `[0, 1]`), the `[black, white]`
/// values of its window when it is linear, and where it came from.
#[allow(clippy::type_complexity)]
fn display_of(
    object: &DefaultDicomObject,
    frame: usize,
    choice: WindowChoice,
    values: &[f32],
) -> Result<(Box<dyn Fn(f64) -> f64>, Option<[f64; 2]>, String)> {
    let linear = |(ramp, source): (Ramp, String)| {
        let window = Some([ramp.low, ramp.high]);
        let display: Box<dyn Fn(f64) -> f64> = Box::new(move |v| ramp.apply(v));
        (display, window, source)
    };
    if choice == WindowChoice::Auto {
        if let Some(lut) = Lut::first(object, frame, tags::VOILUT_SEQUENCE, "VOI LUT", false)? {
            let display: Box<dyn Fn(f64) -> f64> = Box::new(move |v| lut.display(v));
            return Ok((display, None, "voi-lut".into()));
        }
        if let Some((window, function)) = stored_window(object, frame)? {
            let super::Window { center, width } = window;
            return Ok(match function {
                VoiFunction::Linear => linear((window.ramp(), "file".into())),
                VoiFunction::LinearExact => {
                    let (low, high) = (center - width / 2.0, center + width / 2.0);
                    linear((Ramp { low, high }, "file".into()))
                }
                VoiFunction::Sigmoid => {
                    let display: Box<dyn Fn(f64) -> f64> =
                        Box::new(move |v| 1.0 / (1.0 + (-4.0 * (v - center) / width).exp()));
                    (display, None, "sigmoid".into())
                }
            });
        }
        let ramp = chosen_ramp(WindowChoice::Full, values)
            .ok_or_else(|| Error::Decode("the frame has no pixel values".into()))?;
        return Ok(linear(ramp));
    }
    let ramp = chosen_ramp(choice, values)
        .ok_or_else(|| Error::Decode("the frame has no pixel values".into()))?;
    Ok(linear(ramp))
}

/// The VOI LUT Function that turns a window into display values (PS3.3 C.11.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq)]
enum VoiFunction {
    /// `LINEAR` (the default): black up to `c − 0.5 − (w − 1)/2`, white above `c − 0.5 + (w − 1)/2`.
    Linear,
    /// `LINEAR_EXACT`: black up to `c − w/2`, white above `c + w/2`.
    LinearExact,
    /// `SIGMOID`: `1 / (1 + exp(−4 (x − c) / w))`.
    Sigmoid,
}

/// The first Window Center / Window Width pair that the file states for `frame`, and its VOI LUT
/// Function, if there is a pair valid for that function (width ≥ 1 for LINEAR, > 0 otherwise).
fn stored_window(
    object: &DefaultDicomObject,
    frame: usize,
) -> Result<Option<(super::Window, VoiFunction)>> {
    let element = |tag| frame_element(object, frame, tags::FRAME_VOILUT_SEQUENCE, tag);
    let first = |tag: Tag| -> Result<Option<f64>> {
        Ok(match element(tag) {
            Some(e) => e
                .to_multi_float64()
                .map_err(|_| bad_attribute("Window Center/Width"))?
                .first()
                .copied(),
            None => None,
        })
    };
    let function = match element(tags::VOILUT_FUNCTION).and_then(|e| e.to_str().ok()) {
        None => VoiFunction::Linear,
        Some(text) => match text.trim() {
            "" | "LINEAR" => VoiFunction::Linear,
            "LINEAR_EXACT" => VoiFunction::LinearExact,
            "SIGMOID" => VoiFunction::Sigmoid,
            _ => return Err(bad_attribute("VOI LUT Function")),
        },
    };
    let least = if function == VoiFunction::Linear {
        1.0
    } else {
        f64::MIN_POSITIVE
    };
    Ok(
        match (first(tags::WINDOW_CENTER)?, first(tags::WINDOW_WIDTH)?) {
            (Some(center), Some(width)) if center.is_finite() && width >= least => {
                Some((super::Window { center, width }, function))
            }
            _ => None,
        },
    )
}

/// The first item of a Modality or VOI LUT Sequence: a table from stored to modality values, or
/// from modality to display values (PS3.3 C.11.1 and C.11.2).
struct Lut {
    /// The input value of the table's first entry.
    first: f64,
    /// The table, `0 ..= max`.
    data: Vec<u16>,
    /// `2^bits − 1`.
    max: f64,
}

impl Lut {
    /// The table of the first item of `sequence` (named `name` in errors) for `frame`, if the
    /// file has one: the file's own, else the one in the frame's functional groups (a VOI LUT
    /// in the Frame VOI LUT group, a Modality LUT in the Pixel Value Transformation group, PS3.3
    /// C.7.6.16.2.9–10). `signed_input`: the table's inputs are signed, so a first input value
    /// stored as US above 32767 is negative (the LUT Descriptor is "US or SS", PS3.3 C.11.1.1).
    fn first(
        object: &DefaultDicomObject,
        frame: usize,
        sequence: Tag,
        name: &str,
        signed_input: bool,
    ) -> Result<Option<Lut>> {
        let group = if sequence == tags::VOILUT_SEQUENCE {
            tags::FRAME_VOILUT_SEQUENCE
        } else {
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE
        };
        let Some(item) = frame_element(object, frame, group, sequence)
            .and_then(|e| e.items())
            .and_then(|items| items.first())
        else {
            return Ok(None);
        };
        let lut_error = || bad_attribute(&format!("{name} Sequence"));
        let descriptor: Vec<i64> = item
            .element(tags::LUT_DESCRIPTOR)
            .map_err(|_| lut_error())?
            .to_multi_int()
            .map_err(|_| lut_error())?;
        let data: Vec<u16> = item
            .element(tags::LUT_DATA)
            .map_err(|_| lut_error())?
            .to_multi_int()
            .map_err(|_| lut_error())?;
        let [entries, first, bits] = descriptor[..] else {
            return Err(lut_error());
        };
        let entries = if entries == 0 {
            65_536
        } else {
            entries as usize
        };
        if data.len() < entries || !(1..=16).contains(&bits) {
            return Err(lut_error());
        }
        let first = if signed_input && first > i16::MAX as i64 {
            first - 65_536
        } else {
            first
        };
        Ok(Some(Lut {
            first: first as f64,
            data: data[..entries].to_vec(),
            max: ((1u32 << bits) - 1) as f64,
        }))
    }

    /// `value`'s table entry (the first or last entry outside the table).
    fn entry(&self, value: f64) -> f64 {
        let index = (value - self.first)
            .round()
            .clamp(0.0, (self.data.len() - 1) as f64);
        self.data[index as usize] as f64
    }

    /// `value`'s table entry on `[0, 1]`.
    fn display(&self, value: f64) -> f64 {
        (self.entry(value) / self.max).min(1.0)
    }
}

/// A colour frame from its samples, pixel by pixel (RGB; YBR_FULL and YBR_FULL_422 converted as
/// PS3.3 C.7.6.3.1.2 defines them), samples wider than 8 bits reduced to their high byte.
fn color_image(
    samples: &[u32],
    photometric: &PhotometricInterpretation,
    bits: usize,
    [rows, cols]: [usize; 2],
) -> Result<RgbaImage> {
    let ybr = matches!(
        photometric,
        PhotometricInterpretation::YbrFull | PhotometricInterpretation::YbrFull422
    );
    if !ybr && *photometric != PhotometricInterpretation::Rgb {
        return Err(Error::Decode(format!(
            "the photometric interpretation {} is not supported (MONOCHROME1, MONOCHROME2, \
             PALETTE COLOR, RGB, YBR_FULL and YBR_FULL_422 are)",
            defined_term(photometric.as_ref(), &PHOTOMETRIC_TERMS)
                .unwrap_or("(not a defined term)")
        )));
    }
    if bits < 8 || samples.len() != rows * cols * 3 {
        return Err(Error::Decode(
            "a colour image needs three samples of at least 8 bits a pixel".into(),
        ));
    }
    let shift = bits - 8;
    let mut out = Vec::with_capacity(rows * cols * 4);
    for pixel in samples.chunks_exact(3) {
        let sample = [0, 1, 2].map(|i| (pixel[i] >> shift) as u8);
        if ybr {
            out.extend(ybr_to_rgb(sample.map(f64::from)));
        } else {
            out.extend(sample);
        }
        out.push(255);
    }
    RgbaImage::new(cols, rows, out)
}

/// The Modality attribute when it is one of the standard's terms.
fn modality(object: &InMemDicomObject) -> Option<String> {
    let text = object.get(tags::MODALITY)?.to_str().ok()?;
    defined_term(&text, &MODALITIES).map(str::to_string)
}

/// `text`, trimmed, when it is one of `terms`: only the standard's own words leave the decoder,
/// so that no other text written in an attribute travels out through it.
fn defined_term<'a>(text: &'a str, terms: &[&str]) -> Option<&'a str> {
    let term = text.trim_matches([' ', '\0']);
    terms.contains(&term).then_some(term)
}

/// The Photometric Interpretation attribute's defined terms (PS3.3 C.7.6.3.1.2).
const PHOTOMETRIC_TERMS: [&str; 14] = [
    "MONOCHROME1",
    "MONOCHROME2",
    "PALETTE COLOR",
    "RGB",
    "HSV",
    "ARGB",
    "CMYK",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_PARTIAL_422",
    "YBR_PARTIAL_420",
    "YBR_ICT",
    "YBR_RCT",
    "XYB",
];

/// The Modality attribute's defined terms (PS3.3 C.7.3.1.1.1, current and retired).
const MODALITIES: [&str; 96] = [
    "AR",
    "AS",
    "ASMT",
    "AU",
    "BDUS",
    "BI",
    "BMD",
    "CD",
    "CF",
    "CFM",
    "CP",
    "CR",
    "CS",
    "CT",
    "CTPROTOCOL",
    "DD",
    "DF",
    "DG",
    "DM",
    "DMS",
    "DOC",
    "DS",
    "DX",
    "EC",
    "ECG",
    "EEG",
    "EMG",
    "EOG",
    "EPS",
    "ES",
    "FA",
    "FID",
    "FS",
    "GM",
    "HC",
    "HD",
    "IO",
    "IOL",
    "IVOCT",
    "IVUS",
    "KER",
    "KO",
    "LEN",
    "LP",
    "LS",
    "M3D",
    "MA",
    "MG",
    "MR",
    "MS",
    "NM",
    "OAM",
    "OCT",
    "OP",
    "OPM",
    "OPR",
    "OPT",
    "OPTBSV",
    "OPTENF",
    "OPV",
    "OSS",
    "OT",
    "PA",
    "PLAN",
    "POS",
    "PR",
    "PT",
    "PX",
    "REG",
    "RESP",
    "RF",
    "RG",
    "RTDOSE",
    "RTIMAGE",
    "RTINTENT",
    "RTPLAN",
    "RTRAD",
    "RTRECORD",
    "RTSEGANN",
    "RTSTRUCT",
    "RWV",
    "SEG",
    "SM",
    "SMR",
    "SR",
    "SRF",
    "ST",
    "STAIN",
    "TEXTUREMAP",
    "TG",
    "US",
    "VA",
    "VF",
    "XA",
    "XAPROTOCOL",
    "XC",
];

fn required_int(object: &DefaultDicomObject, tag: Tag, name: &str) -> Result<usize> {
    optional_int(object, tag)?
        .ok_or_else(|| Error::Decode(format!("the file has no {name} attribute")))
}

fn optional_int(object: &DefaultDicomObject, tag: Tag) -> Result<Option<usize>> {
    match object.get(tag) {
        None => Ok(None),
        Some(e) => e
            .to_int::<u32>()
            .map(|v| Some(v as usize))
            .map_err(|_| bad_attribute(&tag.to_string())),
    }
}

/// Attribute `tag` as it applies to `frame`: the file's own, else the one in functional group
/// `group` of the frame's Per-Frame Functional Groups item, else of the Shared Functional Groups —
/// where enhanced multi-frame files (Enhanced CT, MR, XA…) keep their rescale and window
/// (PS3.3 C.7.6.16).
fn frame_element(
    object: &InMemDicomObject,
    frame: usize,
    group: Tag,
    tag: Tag,
) -> Option<&InMemElement> {
    if let Some(element) = object.get(tag) {
        return Some(element);
    }
    fn in_group(item: &InMemDicomObject, group: Tag, tag: Tag) -> Option<&InMemElement> {
        item.get(group)?.items()?.first()?.get(tag)
    }
    let per_frame = object
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items()?.get(frame))
        .and_then(|item| in_group(item, group, tag));
    per_frame.or_else(|| {
        let shared = object.get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)?;
        in_group(shared.items()?.first()?, group, tag)
    })
}

/// The finite number `element` holds, if there is one; an error naming `tag` otherwise.
fn float_of(element: Option<&InMemElement>, tag: Tag) -> Result<Option<f64>> {
    match element {
        None => Ok(None),
        Some(e) => e
            .to_float64()
            .ok()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| bad_attribute(&tag.to_string())),
    }
}

/// An error naming the attribute, never its value.
fn bad_attribute(name: &str) -> Error {
    Error::Decode(format!("the attribute {name} is malformed"))
}

#[cfg(test)]
mod tests {
    use dicom_core::{DataElement, PrimitiveValue, VR, value::DataSetSequence};
    use dicom_dictionary_std::uids;
    use dicom_object::FileMetaTableBuilder;

    use super::*;

    /// A 2-frame 2×2 enhanced-CT-like file: rescale (slope 2, intercept −100) in the shared
    /// functional groups, a different window per frame in the per-frame ones.
    fn enhanced() -> Vec<u8> {
        let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
        let item = |elements: Vec<InMemElement>| InMemDicomObject::from_element_iter(elements);
        let sequence = |tag, items: Vec<InMemDicomObject>| {
            DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
        };
        let rescale = item(vec![
            text(tags::RESCALE_SLOPE, VR::DS, "2"),
            text(tags::RESCALE_INTERCEPT, VR::DS, "-100"),
        ]);
        let window = |center: &str, width: &str| {
            item(vec![sequence(
                tags::FRAME_VOILUT_SEQUENCE,
                vec![item(vec![
                    text(tags::WINDOW_CENTER, VR::DS, center),
                    text(tags::WINDOW_WIDTH, VR::DS, width),
                ])],
            )])
        };
        let shared = item(vec![sequence(
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            vec![rescale],
        )]);
        let mut object = InMemDicomObject::new_empty();
        for (tag, value) in [
            (tags::ROWS, 2u16),
            (tags::COLUMNS, 2),
            (tags::SAMPLES_PER_PIXEL, 1),
            (tags::BITS_ALLOCATED, 16),
            (tags::BITS_STORED, 16),
            (tags::HIGH_BIT, 15),
            (tags::PIXEL_REPRESENTATION, 0),
        ] {
            object.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
        }
        object.put(text(tags::NUMBER_OF_FRAMES, VR::IS, "2"));
        object.put(text(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2",
        ));
        object.put(text(tags::MODALITY, VR::CS, "CT"));
        object.put(sequence(
            tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
            vec![shared],
        ));
        object.put(sequence(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            vec![window("0", "100"), window("150", "50")],
        ));
        let pixels: Vec<u8> = [0u16, 10, 20, 30, 100, 110, 120, 130]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::from(pixels),
        ));
        let file = object
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                    .media_storage_sop_class_uid(uids::ENHANCED_CT_IMAGE_STORAGE)
                    .media_storage_sop_instance_uid("2.25.7"),
            )
            .unwrap();
        let mut bytes = Vec::new();
        file.write_all(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn enhanced_files_take_rescale_and_window_from_their_functional_groups() {
        let bytes = enhanced();
        for (frame, range, window) in [
            // Frame 0: values 2·[0, 30] − 100; window 0 / 100 → [−50, 49].
            (0, [-100.0, -40.0], [-50.0, 49.0]),
            // Frame 1: values 2·[100, 130] − 100; window 150 / 50 → [125, 174].
            (1, [100.0, 160.0], [125.0, 174.0]),
        ] {
            let options = ScanOptions {
                frame: Some(frame),
                ..ScanOptions::default()
            };
            let facts = decode(&bytes, &options).unwrap().facts;
            assert_eq!(facts.value_range, Some(range), "frame {frame}");
            assert_eq!(facts.window, Some(window), "frame {frame}");
            assert_eq!(facts.window_source.as_deref(), Some("file"));
        }
    }

    /// A 1-frame 2×2 MONOCHROME2 file whose pixels are in `tag` (Float or Double Float Pixel
    /// Data) with `bits` allocated.
    fn float_file(tag: Tag, vr: VR, bits: u16, values: PrimitiveValue) -> Vec<u8> {
        let mut object = super::super::test_objects::monochrome(2, 2, bits);
        object.put(DataElement::new(tag, vr, values));
        let file = object
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                    .media_storage_sop_class_uid(uids::PARAMETRIC_MAP_STORAGE)
                    .media_storage_sop_instance_uid("2.25.8"),
            )
            .unwrap();
        let mut bytes = Vec::new();
        file.write_all(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn float_pixel_data_is_shown_as_its_values() {
        let values = [-1.5, 0.0, 2.5, 100.0];
        let single = PrimitiveValue::F32(values.iter().map(|&v| v as f32).collect());
        let double = PrimitiveValue::F64(values.iter().copied().collect());
        for bytes in [
            float_file(tags::FLOAT_PIXEL_DATA, VR::OF, 32, single),
            float_file(tags::DOUBLE_FLOAT_PIXEL_DATA, VR::OD, 64, double),
        ] {
            let scan = decode(&bytes, &ScanOptions::default()).unwrap();
            assert_eq!(scan.facts.value_range, Some([-1.5, 100.0]));
            // The full range is the window: −1.5 black, 100 white, 2.5 at 4/101.5 of the way.
            let gray: Vec<u8> = scan.image.pixels().chunks(4).map(|p| p[0]).collect();
            assert_eq!(gray[0], 0);
            assert_eq!(gray[3], 255);
            assert_eq!(gray[2], (4.0_f64 / 101.5 * 255.0).round() as u8);
        }
        // Float pixel data of the wrong width is refused by name.
        let wrong = float_file(
            tags::FLOAT_PIXEL_DATA,
            VR::OF,
            64,
            PrimitiveValue::F32([0.0f32; 4].into_iter().collect()),
        );
        let error = decode(&wrong, &ScanOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("64-bit pixels are not supported in float pixel data"),
            "{error}"
        );
    }

    #[test]
    fn stored_bits_sign_extend_at_every_width() {
        let bits = |stored, high_bit, signed| StoredBits {
            stored,
            high_bit,
            signed,
        };
        // 32-bit signed: the full word.
        assert_eq!(bits(32, 31, true).values(&[0xFFFF_FFFE, 5]), [-2.0, 5.0]);
        // 12 bits stored at bits 11..0 of a 16-bit word, junk above them ignored.
        assert_eq!(
            bits(12, 11, true).values(&[0xF800, 0x07FF]),
            [-2048.0, 2047.0]
        );
        assert_eq!(bits(12, 11, false).values(&[0xF800]), [2048.0]);
    }

    /// A JPEG baseline file whose header says 1×1 but whose frame header says 8×8: dicom-rs
    /// would decode 64 samples into a buffer sized for one (its adapter then indexes out of
    /// bounds, a panic the fuzzer found); kdlens refuses the frame first.
    #[test]
    fn a_jpeg_frame_larger_than_its_header_is_refused() {
        use dicom_core::value::{PixelFragmentSequence, Value};
        let mut object = super::super::test_objects::monochrome(1, 1, 8);
        // SOI, SOF0 (8 bits, 8 rows, 8 columns, one component), EOI.
        let frame = vec![
            0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0, 0xFF, 0xD9, 0,
        ];
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            Value::PixelSequence(PixelFragmentSequence::new(Vec::<u32>::new(), vec![frame])),
        ));
        let file = object
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::JPEG_BASELINE8_BIT)
                    .media_storage_sop_class_uid(uids::SECONDARY_CAPTURE_IMAGE_STORAGE)
                    .media_storage_sop_instance_uid("2.25.10"),
            )
            .unwrap();
        let mut bytes = Vec::new();
        file.write_all(&mut bytes).unwrap();
        let error = decode(&bytes, &ScanOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("differ from the header's"), "{error}");
    }

    /// A 1-frame 1×5 MONOCHROME2 16-bit file of `values`, with `elements` added.
    fn gray_file(values: [u16; 5], elements: Vec<InMemElement>) -> Vec<u8> {
        let mut object = super::super::test_objects::monochrome(1, 5, 16);
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(values.into_iter().collect()),
        ));
        for element in elements {
            object.put(element);
        }
        let file = object
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                    .media_storage_sop_class_uid(uids::ENHANCED_CT_IMAGE_STORAGE)
                    .media_storage_sop_instance_uid("2.25.9"),
            )
            .unwrap();
        let mut bytes = Vec::new();
        file.write_all(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn voi_lut_functions_shape_the_window() {
        let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
        let stated = |function: &str| {
            vec![
                text(tags::WINDOW_CENTER, VR::DS, "50"),
                text(tags::WINDOW_WIDTH, VR::DS, "20"),
                text(tags::VOILUT_FUNCTION, VR::CS, function),
            ]
        };
        let values = [0, 40, 50, 55, 100];
        let shades = |elements| {
            let scan = decode(&gray_file(values, elements), &ScanOptions::default()).unwrap();
            let gray: Vec<u8> = scan.image.pixels().chunks(4).map(|p| p[0]).collect();
            (gray, scan.facts.window, scan.facts.window_source)
        };
        // SIGMOID: 255 / (1 + exp(−4 (x − 50) / 20)).
        let sigmoid = |x: f64| (255.0 / (1.0 + (-4.0 * (x - 50.0) / 20.0).exp())).round() as u8;
        let (gray, window, source) = shades(stated("SIGMOID"));
        assert_eq!(gray, values.map(|v| sigmoid(f64::from(v))));
        assert_eq!((window, source.as_deref()), (None, Some("sigmoid")));
        // LINEAR_EXACT: black at 40, white at 60; 55 is three quarters of the way.
        let (gray, window, _) = shades(stated("LINEAR_EXACT"));
        assert_eq!(window, Some([40.0, 60.0]));
        assert_eq!(gray, [0, 0, 128, 191, 255]);
        // LINEAR: black up to 40.5 − 9.5 = 40, white above 59.
        let (_, window, _) = shades(stated("LINEAR"));
        assert_eq!(window, Some([40.0, 59.0]));
        // The same from a per-frame functional group.
        let item = |elements: Vec<InMemElement>| InMemDicomObject::from_element_iter(elements);
        let sequence = |tag, items: Vec<InMemDicomObject>| {
            DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
        };
        let grouped = sequence(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            vec![item(vec![sequence(
                tags::FRAME_VOILUT_SEQUENCE,
                vec![item(stated("SIGMOID"))],
            )])],
        );
        let (gray, _, source) = shades(vec![grouped]);
        assert_eq!(gray, values.map(|v| sigmoid(f64::from(v))));
        assert_eq!(source.as_deref(), Some("sigmoid"));
        // An unknown function is an error naming the attribute.
        let error = decode(&gray_file(values, stated("CUBIC")), &ScanOptions::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("VOI LUT Function"), "{error}");
    }
}
