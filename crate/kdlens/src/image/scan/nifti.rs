//! NIfTI-1 and NIfTI-2 volumes (`.nii`, gzipped `.nii.gz`): one slice in one plane, oriented
//! from the header's sform (else qform, else voxel sizes) so that it reads the radiological way.

use std::{borrow::Cow, io::Read};

use ::nifti::{InMemNiftiVolume, NiftiHeader, NiftiType};

use super::{
    MAX_VALUES, Plane, ScanFacts, ScanFormat, ScanImage, ScanOptions, nifti_header,
    shared::{check_size, chosen_ramp, gray_image, pick, value_range},
};
use crate::{Error, Result};

/// Most values a sample for the percentile window takes from a volume.
const WINDOW_SAMPLE: usize = 1 << 20;

/// Decodes one slice of the NIfTI-1 or NIfTI-2 file in `bytes` (gzipped or not).
pub(super) fn decode(bytes: &[u8], options: &ScanOptions) -> Result<ScanImage> {
    let data = unpacked(bytes)?;
    let nifti_header::Header {
        header,
        data_offset,
    } = nifti_header::read(&data)?;
    let dims = Dims::of(&header)?;
    let time = pick(options.frame, dims.volumes, "volume")?;
    let values = voxels(&data, &header, data_offset, &dims, time)?;
    let world = WorldAxes::of(&header);
    let plane = options.plane;
    let (normal, row_axis, col_axis) = match plane {
        Plane::Axial => (2, 1, 0),
        Plane::Coronal => (1, 2, 0),
        Plane::Sagittal => (0, 2, 1),
    };
    let extent = |world_axis: usize| dims.size[world.0[world_axis].voxel];
    let slices = extent(normal);
    let slice = pick(options.slice, slices, "slice")?;
    let [rows, cols] = [extent(row_axis), extent(col_axis)];
    check_size([rows, cols], rows * cols)?;
    let mut plane_values = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            let mut voxel = [0usize; 3];
            world.0[normal].place(&mut voxel, slice, slices, false);
            world.0[row_axis].place(&mut voxel, r, rows, true);
            world.0[col_axis].place(&mut voxel, c, cols, true);
            plane_values.push(values[dims.index(voxel)]);
        }
    }
    let stride = values.len().div_ceil(WINDOW_SAMPLE).max(1);
    let sample: Vec<f32> = values.iter().step_by(stride).copied().collect();
    // One window for the whole volume (from a strided sample of it), so that paging through the
    // slices does not change what a shade means.
    let (ramp, source) = chosen_ramp(options.window, &sample)
        .ok_or_else(|| Error::Decode("the volume has no finite values".into()))?;
    let image = gray_image(&plane_values, [rows, cols], |v| ramp.apply(v), false)?;
    Ok(ScanImage {
        image,
        facts: ScanFacts {
            format: ScanFormat::Nifti,
            modality: None,
            size: [rows, cols],
            frames: dims.volumes,
            frame: time,
            plane: Some(plane),
            slices: Some(slices),
            slice: Some(slice),
            window: Some([ramp.low, ramp.high]),
            window_source: Some(source),
            value_range: value_range(&values),
        },
    })
}

/// The file's bytes, gunzipped if they are gzip: the header first, then only the bytes it declares
/// (voxels up to [`MAX_VALUES`] of at most 8 bytes, after at most 1 MiB of header and
/// extensions), so that a small file claiming a huge volume is refused before anything is
/// inflated for it, and a stream longer than its header says stops there.
fn unpacked(bytes: &[u8]) -> Result<Cow<'_, [u8]>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(Cow::Borrowed(bytes));
    }
    let corrupt = |e: std::io::Error| Error::Decode(format!("corrupt gzip stream ({e})"));
    let mut stream = flate2::read::MultiGzDecoder::new(bytes);
    let mut out = Vec::new();
    (&mut stream)
        .take(nifti_header::LARGEST_LEN as u64)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    let declared = declared_len(&nifti_header::read(&out)?)?;
    let limit = MAX_VALUES as u64 * 8 + (1 << 20);
    if declared > limit {
        return Err(Error::Decode(format!(
            "the header declares {declared} bytes of volume; at most {limit} are read"
        )));
    }
    let rest = declared.saturating_sub(out.len() as u64);
    stream.take(rest).read_to_end(&mut out).map_err(corrupt)?;
    Ok(Cow::Owned(out))
}

/// How many bytes a file with `header` holds up to its last voxel; an error for a volume over
/// [`MAX_VALUES`] voxels or of an unknown data type, told before any voxel is read.
fn declared_len(header: &nifti_header::Header) -> Result<u64> {
    let dims = Dims::of(&header.header)?;
    let kind = header
        .header
        .data_type()
        .map_err(|_| Error::Decode("unknown NIfTI data type".into()))?;
    let voxels = dims.per_volume() as u64 * dims.volumes as u64;
    Ok((header.data_offset as u64).saturating_add(voxels * kind.size_of() as u64))
}

/// The voxel grid: `size` along the three spatial voxel axes, and the volume count.
struct Dims {
    size: [usize; 3],
    volumes: usize,
}

impl Dims {
    fn of(header: &NiftiHeader) -> Result<Self> {
        let dim = header.dim;
        let rank = dim[0] as usize;
        // Up to 4-D, or more dimensions that are all of length 1.
        let supported = match rank {
            2..=4 => true,
            5..=7 => dim[5..=rank].iter().all(|&d| d == 1),
            _ => false,
        };
        if !supported {
            return Err(Error::Decode(format!(
                "a {rank}-dimensional NIfTI image is not supported (2-D to 4-D are)"
            )));
        }
        let at = |i: usize| {
            if i <= rank {
                (dim[i] as usize).max(1)
            } else {
                1
            }
        };
        let size = [at(1), at(2), at(3)];
        let volumes = at(4);
        // In u64: on wasm32 a usize product of four u16 sides could wrap past the check.
        let total = size
            .iter()
            .chain([&volumes])
            .fold(1u64, |n, &d| n.saturating_mul(d as u64));
        if total > MAX_VALUES as u64 {
            return Err(Error::Decode(format!(
                "the volume claims {total} voxels; at most {MAX_VALUES} are read"
            )));
        }
        Ok(Self { size, volumes })
    }

    fn per_volume(&self) -> usize {
        self.size.iter().product()
    }

    /// Index of voxel `[i, j, k]` within one volume (`i` fastest).
    fn index(&self, [i, j, k]: [usize; 3]) -> usize {
        i + self.size[0] * (j + self.size[1] * k)
    }
}

/// The voxel values of volume `time` (one 3-D volume of a 4-D file), after `scl_slope` /
/// `scl_inter`; only that volume's bytes are read.
fn voxels(
    data: &[u8],
    header: &NiftiHeader,
    data_offset: usize,
    dims: &Dims,
    time: usize,
) -> Result<Vec<f32>> {
    let kind = header
        .data_type()
        .map_err(|_| Error::Decode("unknown NIfTI data type".into()))?;
    let len = dims.per_volume();
    // The offset comes from the header as it is: any size, so the sums are checked.
    let volume_bytes = len.checked_mul(kind.size_of());
    let start = volume_bytes
        .and_then(|n| n.checked_mul(time))
        .and_then(|n| n.checked_add(data_offset));
    let end = start.zip(volume_bytes).and_then(|(s, n)| s.checked_add(n));
    let raw = start
        .zip(end)
        .and_then(|(start, end)| data.get(start..end))
        .ok_or_else(|| {
            Error::Decode("the file holds fewer voxels than its header claims".into())
        })?;
    let [x, y, z] = dims.size.map(|d| d as u16);
    let volume = InMemNiftiVolume::from_raw_fields(
        [3, x, y, z, 1, 1, 1, 1],
        kind,
        header.scl_slope,
        header.scl_inter,
        raw.to_vec(),
        header.endianness,
    )
    .map_err(|e| Error::Decode(format!("cannot read the voxels ({e})")))?;
    let read = |e: ::nifti::NiftiError| Error::Decode(format!("cannot read the voxels ({e})"));
    let values: Vec<f64> = match kind {
        NiftiType::Uint8 => widen(volume.into_nifti_typed_data::<u8>().map_err(read)?),
        NiftiType::Int8 => widen(volume.into_nifti_typed_data::<i8>().map_err(read)?),
        NiftiType::Int16 => widen(volume.into_nifti_typed_data::<i16>().map_err(read)?),
        NiftiType::Uint16 => widen(volume.into_nifti_typed_data::<u16>().map_err(read)?),
        NiftiType::Int32 => widen(volume.into_nifti_typed_data::<i32>().map_err(read)?),
        NiftiType::Uint32 => widen(volume.into_nifti_typed_data::<u32>().map_err(read)?),
        NiftiType::Float32 => widen(volume.into_nifti_typed_data::<f32>().map_err(read)?),
        NiftiType::Float64 => volume.into_nifti_typed_data::<f64>().map_err(read)?,
        other => {
            return Err(Error::Decode(format!(
                "NIfTI data type {other:?} is not supported (integers and floats are)"
            )));
        }
    };
    let (slope, intercept) = (header.scl_slope as f64, header.scl_inter as f64);
    let scaled = slope != 0.0 && slope.is_finite() && intercept.is_finite();
    Ok(values
        .iter()
        .map(|&v| if scaled { v * slope + intercept } else { v } as f32)
        .collect())
}

fn widen<T: Into<f64>>(values: Vec<T>) -> Vec<f64> {
    values.into_iter().map(Into::into).collect()
}

/// The voxel axis along world axis `x`, `y` or `z` (RAS+: towards the patient's right,
/// anterior, superior) and whether voxel indices grow in that direction.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axis {
    voxel: usize,
    ascending: bool,
}

impl Axis {
    /// Sets this axis' voxel coordinate for position `p` of `n`, counted along the world
    /// direction — or against it (`descending`: the display's rows and columns run from right
    /// to left, anterior or superior to posterior or inferior).
    fn place(&self, voxel: &mut [usize; 3], p: usize, n: usize, descending: bool) {
        voxel[self.voxel] = if self.ascending != descending {
            p
        } else {
            n - 1 - p
        };
    }
}

/// For each world axis, the voxel axis closest to it.
#[derive(Debug, PartialEq)]
struct WorldAxes([Axis; 3]);

impl WorldAxes {
    /// From the linear part of the header's voxel-to-world transform (sform when its code is
    /// set, else qform, else the voxel sizes alone), pairing axes by the largest cosines first.
    fn of(header: &NiftiHeader) -> Self {
        Self::from_matrix(linear_part(header))
    }

    fn from_matrix(m: [[f64; 3]; 3]) -> Self {
        // Cosines: each voxel axis' column divided by its length (the voxel size), so that thick
        // slices do not outweigh the in-plane axes.
        let length = |v: usize| {
            (0..3)
                .map(|w| m[w][v] * m[w][v])
                .sum::<f64>()
                .sqrt()
                .max(1e-12)
        };
        let mut entries: Vec<(f64, usize, usize)> = (0..3)
            .flat_map(|w| (0..3).map(move |v| (w, v)))
            .map(|(w, v)| ((m[w][v] / length(v)).abs(), w, v))
            .collect();
        entries.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut axes = [None; 3];
        let (mut world_used, mut voxel_used) = ([false; 3], [false; 3]);
        for (_, w, v) in entries {
            if !world_used[w] && !voxel_used[v] {
                world_used[w] = true;
                voxel_used[v] = true;
                axes[w] = Some(Axis {
                    voxel: v,
                    ascending: m[w][v] >= 0.0,
                });
            }
        }
        Self(axes.map(|a| {
            a.unwrap_or(Axis {
                voxel: 0,
                ascending: true,
            })
        }))
    }
}

/// The 3×3 linear part (world row, voxel column) of the voxel-to-world transform.
fn linear_part(h: &NiftiHeader) -> [[f64; 3]; 3] {
    let pixdim = |i: usize| {
        let d = h.pixdim[i] as f64;
        if d.is_finite() && d != 0.0 { d } else { 1.0 }
    };
    if h.sform_code > 0 {
        let rows = [h.srow_x, h.srow_y, h.srow_z];
        return rows.map(|r| [r[0] as f64, r[1] as f64, r[2] as f64]);
    }
    if h.qform_code > 0 {
        let (b, c, d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let rotation = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - b * b - c * c,
            ],
        ];
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let scale = [pixdim(1), pixdim(2), qfac * pixdim(3)];
        return rotation.map(|row| [row[0] * scale[0], row[1] * scale[1], row[2] * scale[2]]);
    }
    [
        [pixdim(1), 0.0, 0.0],
        [0.0, pixdim(2), 0.0],
        [0.0, 0.0, pixdim(3)],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_pair_by_the_largest_cosines() {
        // LAS voxel axes: i towards the left, j anterior, k superior.
        let las = WorldAxes::from_matrix([[-2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]);
        assert_eq!(
            las.0,
            [
                Axis {
                    voxel: 0,
                    ascending: false
                },
                Axis {
                    voxel: 1,
                    ascending: true
                },
                Axis {
                    voxel: 2,
                    ascending: true
                },
            ]
        );
        // A coronal acquisition, slightly oblique: i → x, j → −z, k → y.
        let coronal = WorldAxes::from_matrix([[1.0, 0.1, 0.0], [0.0, 0.05, 1.0], [0.1, -1.0, 0.0]]);
        assert_eq!(
            coronal.0[1],
            Axis {
                voxel: 2,
                ascending: true
            }
        );
        assert_eq!(
            coronal.0[2],
            Axis {
                voxel: 1,
                ascending: false
            }
        );
    }

    #[test]
    fn placing_counts_along_or_against_the_world_direction() {
        let mut voxel = [0; 3];
        Axis {
            voxel: 1,
            ascending: true,
        }
        .place(&mut voxel, 0, 10, true);
        assert_eq!(voxel, [0, 9, 0]);
        Axis {
            voxel: 1,
            ascending: false,
        }
        .place(&mut voxel, 0, 10, true);
        assert_eq!(voxel, [0, 0, 0]);
        Axis {
            voxel: 2,
            ascending: false,
        }
        .place(&mut voxel, 2, 10, false);
        assert_eq!(voxel, [0, 0, 7]);
    }

    /// A NIfTI-1 int16 volume of `dims` (voxels `0, 1, 2, …`) behind its header and extension
    /// flag.
    fn nifti1_int16(dims: [i16; 3], voxels: usize) -> Vec<u8> {
        let mut b = vec![0u8; 352];
        let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(&mut b, 0, &348i32.to_le_bytes());
        for (i, d) in [3, dims[0], dims[1], dims[2], 1, 1, 1, 1]
            .iter()
            .enumerate()
        {
            put(&mut b, 40 + 2 * i, &d.to_le_bytes());
        }
        put(&mut b, 70, &4i16.to_le_bytes());
        put(&mut b, 72, &16i16.to_le_bytes());
        for i in 0..8 {
            put(&mut b, 76 + 4 * i, &1f32.to_le_bytes());
        }
        put(&mut b, 108, &352f32.to_le_bytes());
        put(&mut b, 344, b"n+1\0");
        b.extend((0..voxels).flat_map(|v| (v as i16).to_le_bytes()));
        b
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_gzipped_volume_over_the_limit_is_refused_from_its_header_alone() {
        // 1024³ voxels claimed; after the header's 540 bytes the stream is not even gzip, so
        // inflating anything past the header would fail differently.
        let mut header = nifti1_int16([1024, 1024, 1024], 0);
        header.resize(nifti_header::LARGEST_LEN, 0);
        let mut file = gzip(&header);
        file.extend([0xde, 0xad, 0xbe, 0xef].repeat(64));
        let error = decode(&file, &ScanOptions::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("claims 1073741824 voxels"), "{error}");
    }

    #[test]
    fn a_gzipped_volume_is_inflated_up_to_its_last_voxel_only() {
        let mut volume = nifti1_int16([32, 32, 4], 32 * 32 * 4);
        let declared = volume.len();
        volume.extend(vec![0u8; 1 << 20]);
        let file = gzip(&volume);
        assert_eq!(unpacked(&file).unwrap().len(), declared);
        let image = decode(&file, &ScanOptions::default()).unwrap();
        assert_eq!(image.facts.size, [32, 32]);
        assert_eq!(image.facts.value_range, Some([0.0, 4095.0]));
    }
}
