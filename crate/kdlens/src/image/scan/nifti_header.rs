//! NIfTI headers, version 1 (348 bytes, read by the `nifti` crate) and version 2 (540 bytes,
//! 64-bit sizes and doubles, read here: the `nifti` crate reads only version 1), both as the
//! `nifti` crate's [`NiftiHeader`] with where the voxels start.

use ::nifti::{Endianness, NiftiHeader};

use crate::{Error, Result};

/// Size of a NIfTI-1 header.
const NIFTI1_LEN: usize = 348;
/// Size of a NIfTI-2 header.
const NIFTI2_LEN: usize = 540;
/// The most bytes [`read`] looks at.
pub(super) const LARGEST_LEN: usize = NIFTI2_LEN;
/// The 4 bytes of the extension flag that follow the header in a single `.nii` file.
const EXTENDER_LEN: usize = 4;

/// A header and the byte offset of the first voxel in the (gunzipped) file.
pub(super) struct Header {
    /// The header; a NIfTI-2 header's values narrowed to NIfTI-1's types (sizes checked).
    pub header: NiftiHeader,
    /// Where the voxels start: `vox_offset`, at least just past the header and its extension
    /// flag.
    pub data_offset: usize,
}

/// Reads the NIfTI-1 or NIfTI-2 header at the start of `data`.
pub(super) fn read(data: &[u8]) -> Result<Header> {
    match version(data) {
        Some((2, endianness)) => nifti2(data, endianness),
        _ => {
            let header = NiftiHeader::from_reader(data)
                .map_err(|e| Error::Decode(format!("not a readable NIfTI-1 header ({e})")))?;
            let offset = header.vox_offset;
            if !(offset.is_finite() && offset >= 0.0) {
                return Err(Error::Decode(
                    "the NIfTI-1 voxel offset is not a size".into(),
                ));
            }
            let data_offset = (offset as usize).max(NIFTI1_LEN + EXTENDER_LEN);
            Ok(Header {
                header,
                data_offset,
            })
        }
    }
}

/// The NIfTI version and byte order that the first field (the header's own size) states.
fn version(data: &[u8]) -> Option<(u8, Endianness)> {
    let first: [u8; 4] = data.get(..4)?.try_into().ok()?;
    [Endianness::Little, Endianness::Big]
        .into_iter()
        .find_map(|e| match read_i32(first, e) {
            348 => Some((1, e)),
            540 => Some((2, e)),
            _ => None,
        })
}

fn read_i32(bytes: [u8; 4], endianness: Endianness) -> i32 {
    match endianness {
        Endianness::Little => i32::from_le_bytes(bytes),
        Endianness::Big => i32::from_be_bytes(bytes),
    }
}

/// The fields of a NIfTI-2 header (`nifti2.h`), in `endianness`.
struct Fields<'a> {
    bytes: &'a [u8],
    endianness: Endianness,
}

impl Fields<'_> {
    fn array<const N: usize>(&self, offset: usize) -> [u8; N] {
        self.bytes[offset..offset + N]
            .try_into()
            .expect("offsets lie inside the 540-byte header")
    }

    fn i16(&self, offset: usize) -> i16 {
        match self.endianness {
            Endianness::Little => i16::from_le_bytes(self.array(offset)),
            Endianness::Big => i16::from_be_bytes(self.array(offset)),
        }
    }

    fn i32(&self, offset: usize) -> i32 {
        read_i32(self.array(offset), self.endianness)
    }

    fn i64(&self, offset: usize) -> i64 {
        match self.endianness {
            Endianness::Little => i64::from_le_bytes(self.array(offset)),
            Endianness::Big => i64::from_be_bytes(self.array(offset)),
        }
    }

    fn f64(&self, offset: usize) -> f64 {
        match self.endianness {
            Endianness::Little => f64::from_le_bytes(self.array(offset)),
            Endianness::Big => f64::from_be_bytes(self.array(offset)),
        }
    }

    /// `N` doubles from `offset`, narrowed to f32.
    fn f32s<const N: usize>(&self, offset: usize) -> [f32; N] {
        std::array::from_fn(|i| self.f64(offset + 8 * i) as f32)
    }

    /// A 16-bit code stored in a 32-bit field; out-of-range values become an unknown code.
    fn code(&self, offset: usize) -> i16 {
        i16::try_from(self.i32(offset)).unwrap_or(i16::MAX)
    }
}

/// A NIfTI-2 header: the fields kdlens uses, with the dimensions checked to fit NIfTI-1's 16 bits
/// (far above the largest accepted scan) and the voxel offset kept at full width.
fn nifti2(data: &[u8], endianness: Endianness) -> Result<Header> {
    let bytes = data
        .get(..NIFTI2_LEN)
        .ok_or_else(|| Error::Decode("the NIfTI-2 header is cut short".into()))?;
    let f = Fields { bytes, endianness };
    // dim[0] is the rank; the sizes past it are unused (readers ignore them).
    let rank = f.i64(16);
    if !(1..=7).contains(&rank) {
        return Err(Error::Decode(format!(
            "a NIfTI-2 image of rank {rank} (1 to 7 are defined)"
        )));
    }
    let mut dim = [1u16; 8];
    dim[0] = rank as u16;
    for (i, d) in dim.iter_mut().enumerate().skip(1).take(rank as usize) {
        let value = f.i64(16 + 8 * i);
        *d = u16::try_from(value).map_err(|_| {
            Error::Decode(format!(
                "NIfTI-2 dimension {i} is {value}; at most 65535 are read"
            ))
        })?;
    }
    let data_offset = usize::try_from(f.i64(168))
        .map_err(|_| Error::Decode("the NIfTI-2 voxel offset is not a size".into()))?
        .max(NIFTI2_LEN + EXTENDER_LEN);
    let header = NiftiHeader {
        sizeof_hdr: NIFTI2_LEN as i32,
        dim,
        datatype: f.i16(12),
        bitpix: f.i16(14),
        pixdim: f.f32s(104),
        scl_slope: f.f64(176) as f32,
        scl_inter: f.f64(184) as f32,
        qform_code: f.code(344),
        sform_code: f.code(348),
        quatern_b: f.f64(352) as f32,
        quatern_c: f.f64(360) as f32,
        quatern_d: f.f64(368) as f32,
        quatern_x: f.f64(376) as f32,
        quatern_y: f.f64(384) as f32,
        quatern_z: f.f64(392) as f32,
        srow_x: f.f32s(400),
        srow_y: f.f32s(432),
        srow_z: f.f32s(464),
        endianness,
        ..NiftiHeader::default()
    };
    Ok(Header {
        header,
        data_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian NIfTI-2 header of a 4×3×2 int16 volume with an sform.
    fn nifti2_bytes() -> Vec<u8> {
        let mut b = vec![0u8; NIFTI2_LEN + EXTENDER_LEN];
        let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(&mut b, 0, &540i32.to_le_bytes());
        put(&mut b, 4, b"n+2\0\r\n\x1a\n");
        put(&mut b, 12, &4i16.to_le_bytes());
        put(&mut b, 14, &16i16.to_le_bytes());
        for (i, d) in [3i64, 4, 3, 2, 1, 1, 1, 1].iter().enumerate() {
            put(&mut b, 16 + 8 * i, &d.to_le_bytes());
        }
        for i in 0..8 {
            put(&mut b, 104 + 8 * i, &2.5f64.to_le_bytes());
        }
        put(&mut b, 168, &600i64.to_le_bytes());
        put(&mut b, 176, &2.0f64.to_le_bytes());
        put(&mut b, 184, &(-7.0f64).to_le_bytes());
        put(&mut b, 348, &1i32.to_le_bytes());
        for (row, at) in [(0usize, 400usize), (1, 432), (2, 464)] {
            for col in 0..4 {
                let v = if col == row { -1.5f64 } else { col as f64 };
                put(&mut b, at + 8 * col, &v.to_le_bytes());
            }
        }
        b
    }

    #[test]
    fn a_nifti2_header_reads_as_nifti1_fields() {
        let read = read(&nifti2_bytes()).unwrap();
        let h = &read.header;
        assert_eq!(h.dim, [3, 4, 3, 2, 1, 1, 1, 1]);
        assert_eq!((h.datatype, h.bitpix), (4, 16));
        assert_eq!((h.scl_slope, h.scl_inter), (2.0, -7.0));
        assert_eq!((h.sform_code, h.qform_code), (1, 0));
        assert_eq!(h.srow_y, [0.0, -1.5, 2.0, 3.0]);
        assert_eq!(h.pixdim, [2.5; 8]);
        assert_eq!(read.data_offset, 600);
    }

    #[test]
    fn oversized_or_cut_nifti2_headers_are_refused() {
        let mut big = nifti2_bytes();
        big[24..32].copy_from_slice(&70_000i64.to_le_bytes());
        let err = read(&big).err().unwrap().to_string();
        assert!(err.contains("dimension 1 is 70000"), "{err}");
        // Sizes past the rank are unused, whatever they hold.
        let mut unused = nifti2_bytes();
        unused[16 + 8 * 6..16 + 8 * 7].copy_from_slice(&(-5i64).to_le_bytes());
        assert_eq!(read(&unused).unwrap().header.dim, [3, 4, 3, 2, 1, 1, 1, 1]);
        let err = read(&nifti2_bytes()[..300]).err().unwrap().to_string();
        assert!(err.contains("cut short"), "{err}");
    }

    #[test]
    fn a_big_endian_nifti2_header_is_told_by_its_size_field() {
        assert_eq!(version(&540i32.to_be_bytes()), Some((2, Endianness::Big)));
        assert_eq!(
            version(&348i32.to_le_bytes()),
            Some((1, Endianness::Little))
        );
        assert_eq!(version(b"abcd"), None);
    }
}
