//! NIfTI-1 and NIfTI-2 volumes (`.nii`, gzipped `.nii.gz`): one slice in one plane, oriented
//! from the header's sform (else qform, else voxel sizes) so that it reads the radiological way.

use std::io::Read;

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
    let data = gunzip_bounded(bytes)?;
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

/// `bytes`, gunzipped if they are gzip, refusing more than the largest volume accepted.
fn gunzip_bounded(bytes: &[u8]) -> Result<Vec<u8>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    let limit = (MAX_VALUES * 8 + (1 << 20)) as u64;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Decode(format!("corrupt gzip stream ({e})")))?;
    if out.len() as u64 > limit {
        return Err(Error::Decode(format!(
            "the gzipped volume unpacks to more than {limit} bytes"
        )));
    }
    Ok(out)
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
}
