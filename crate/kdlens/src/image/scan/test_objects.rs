//! Small DICOM objects for the scan decoder's unit tests.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// The image attributes of a one-sample MONOCHROME2 frame of `[rows, cols]` at `bits` bits
/// allocated, without pixel data.
pub(super) fn monochrome(rows: u16, cols: u16, bits: u16) -> InMemDicomObject {
    let mut object = InMemDicomObject::new_empty();
    for (tag, value) in [
        (tags::ROWS, rows),
        (tags::COLUMNS, cols),
        (tags::SAMPLES_PER_PIXEL, 1),
        (tags::BITS_ALLOCATED, bits),
    ] {
        object.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
    }
    object.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from("MONOCHROME2"),
    ));
    object
}
