//! Writes a PyTorch `state_dict` file in the layout of `torch.save` (PyTorch ≥ 1.6: a ZIP archive
//! holding a protocol-2 pickle of an `OrderedDict` of `_rebuild_tensor_v2` calls and one raw
//! little-endian storage per tensor), so tests can build torchvision-layout checkpoints without
//! PyTorch. What burn-store's reader needs, not every detail of `torch.save` (no 64-byte
//! alignment of the storages, no pickle memo, no `serialization_id`); only contiguous CPU
//! tensors of `float32` and `int64`. (burn-store reads `.pth` files but does not write them.)

use std::{io::Write, path::Path};

use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

/// A tensor's values.
pub enum Values {
    /// `torch.float32`.
    F32(Vec<f32>),
    /// `torch.int64` (e.g. BatchNorm's `num_batches_tracked`).
    I64(Vec<i64>),
}

/// One `state_dict` entry: key, shape (empty for a scalar), row-major values.
pub struct Entry {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Values,
}

/// A protocol-2 pickle, opcode by opcode.
struct Pickle(Vec<u8>);

impl Pickle {
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    fn string(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: usize) {
        self.0.push(b'J');
        self.0.extend_from_slice(
            &i32::try_from(v)
                .expect("fits a pickle BININT")
                .to_le_bytes(),
        );
    }
    fn ints(&mut self, values: &[usize]) {
        self.0.push(b'(');
        values.iter().for_each(|v| self.int(*v));
        self.0.push(b't');
    }
    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.0.extend_from_slice(b")R");
    }
}

/// Writes `entries` to `path` as `torch.save(state_dict, path)` would.
pub fn write_state_dict(path: &Path, entries: &[Entry]) -> std::io::Result<()> {
    let root = "archive";
    let mut pickle = Pickle(vec![0x80, 2]);
    pickle.empty_ordered_dict();
    pickle.0.push(b'(');
    for (k, entry) in entries.iter().enumerate() {
        let (storage, numel) = match &entry.values {
            Values::F32(v) => ("FloatStorage", v.len()),
            Values::I64(v) => ("LongStorage", v.len()),
        };
        assert_eq!(
            numel,
            entry.shape.iter().product::<usize>(),
            "{}",
            entry.name
        );
        let mut strides = vec![1usize; entry.shape.len()];
        for d in (0..entry.shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * entry.shape[d + 1];
        }
        pickle.string(&entry.name);
        pickle.global("torch._utils", "_rebuild_tensor_v2");
        pickle.0.extend_from_slice(b"((");
        pickle.string("storage");
        pickle.global("torch", storage);
        pickle.string(&k.to_string());
        pickle.string("cpu");
        pickle.int(numel);
        pickle.0.extend_from_slice(b"tQ");
        pickle.int(0);
        pickle.ints(&entry.shape);
        pickle.ints(&strides);
        pickle.0.push(0x89);
        pickle.empty_ordered_dict();
        pickle.0.extend_from_slice(b"tR");
    }
    pickle.0.extend_from_slice(b"u.");

    let mut zip = ZipWriter::new(std::fs::File::create(path)?);
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let mut put = |name: String, bytes: &[u8]| -> std::io::Result<()> {
        zip.start_file(name, stored)
            .map_err(std::io::Error::other)?;
        zip.write_all(bytes)
    };
    put(format!("{root}/data.pkl"), &pickle.0)?;
    put(format!("{root}/byteorder"), b"little")?;
    for (k, entry) in entries.iter().enumerate() {
        let bytes: Vec<u8> = match &entry.values {
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        put(format!("{root}/data/{k}"), &bytes)?;
    }
    put(format!("{root}/version"), b"3\n")?;
    zip.finish().map_err(std::io::Error::other)?;
    Ok(())
}
