use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::gpu::WeightDType;

#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid safetensors file ({reason}); the file may be truncated or corrupt")]
    Header { path: PathBuf, reason: String },
    #[error("{path}: bad shard index: {reason}")]
    Index { path: PathBuf, reason: String },
    #[error("{dir}: no model.safetensors, model.safetensors.index.json or *.safetensors file")]
    NoWeights { dir: PathBuf },
    #[error("tensor {name} is missing from the checkpoint in {dir}")]
    Missing { name: String, dir: PathBuf },
    #[error("tensor {name} in {path} has dtype {dtype}; supported: BF16, F16, F32")]
    DType { name: String, path: PathBuf, dtype: String },
    #[error("tensor {name} in {path} has shape {found:?} but the config implies {expected:?}")]
    Shape { name: String, path: PathBuf, expected: Vec<usize>, found: Vec<usize> },
    #[error("tensor {name} in {path} holds {value} at element {index}: the checkpoint is corrupt")]
    NonFinite { name: String, path: PathBuf, index: usize, value: String },
}

struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// All tensors of a checkpoint directory, backed by memory maps.
pub struct WeightStore {
    dir: PathBuf,
    files: Vec<(PathBuf, Mmap)>,
    tensors: BTreeMap<String, Entry>,
}

/// One tensor's bytes, straight from the memory map.
pub struct TensorRef<'a> {
    pub name: &'a str,
    pub path: &'a Path,
    pub dtype: Dtype,
    pub shape: &'a [usize],
    pub bytes: &'a [u8],
}

fn shard_files(dir: &Path) -> Result<Vec<PathBuf>, WeightError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|source| WeightError::Io { path: index.clone(), source })?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| WeightError::Index { path: index.clone(), reason: e.to_string() })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| WeightError::Index { path: index.clone(), reason: "no \"weight_map\" object".into() })?;
        let mut files: Vec<PathBuf> = Vec::new();
        for (name, file) in map {
            let file = file.as_str().ok_or_else(|| WeightError::Index {
                path: index.clone(),
                reason: format!("entry for {name} is not a file name"),
            })?;
            let p = dir.join(file);
            if !files.contains(&p) {
                files.push(p);
            }
        }
        files.sort();
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| WeightError::Io { path: dir.to_path_buf(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(WeightError::NoWeights { dir: dir.to_path_buf() });
    }
    Ok(files)
}

impl WeightStore {
    pub fn open(dir: &Path) -> Result<WeightStore, WeightError> {
        let mut files = Vec::new();
        let mut tensors = BTreeMap::new();
        for path in shard_files(dir)? {
            let file = std::fs::File::open(&path).map_err(|source| WeightError::Io { path: path.clone(), source })?;
            // SAFETY: checkpoints are read-only inputs; a file changed under us while mapped is
            // outside what any loader can defend against.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|source| WeightError::Io { path: path.clone(), source })?;
            // read_metadata checks the header, that offsets are contiguous and sized to their
            // shapes, and that the file is exactly as long as the header says.
            let (header_len, meta) = SafeTensors::read_metadata(&mmap)
                .map_err(|e| WeightError::Header { path: path.clone(), reason: e.to_string() })?;
            let data_start = 8 + header_len;
            for (name, info) in meta.tensors() {
                let (s, e) = info.data_offsets;
                tensors.insert(
                    name,
                    Entry {
                        file: files.len(),
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        start: data_start + s,
                        end: data_start + e,
                    },
                );
            }
            files.push((path, mmap));
        }
        Ok(WeightStore { dir: dir.to_path_buf(), files, tensors })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|s| s.as_str())
    }

    pub fn get(&self, name: &str) -> Result<TensorRef<'_>, WeightError> {
        let (key, e) = self
            .tensors
            .get_key_value(name)
            .ok_or_else(|| WeightError::Missing { name: name.to_string(), dir: self.dir.clone() })?;
        let (path, mmap) = &self.files[e.file];
        Ok(TensorRef { name: key, path, dtype: e.dtype, shape: &e.shape, bytes: &mmap[e.start..e.end] })
    }

    /// Fetches `name` and checks it has exactly `shape`.
    pub fn get_shaped(&self, name: &str, shape: &[usize]) -> Result<TensorRef<'_>, WeightError> {
        let t = self.get(name)?;
        if t.shape != shape {
            return Err(WeightError::Shape {
                name: name.into(),
                path: t.path.into(),
                expected: shape.into(),
                found: t.shape.into(),
            });
        }
        t.check_finite()?;
        Ok(t)
    }
}

impl TensorRef<'_> {
    pub fn weight_dtype(&self) -> Result<WeightDType, WeightError> {
        match self.dtype {
            Dtype::BF16 => Ok(WeightDType::BF16),
            Dtype::F16 => Ok(WeightDType::F16),
            Dtype::F32 => Ok(WeightDType::F32),
            other => {
                Err(WeightError::DType { name: self.name.into(), path: self.path.into(), dtype: format!("{other:?}") })
            }
        }
    }

    /// Fails on the first NaN or ±Inf (an all-ones exponent), naming the tensor: one pass over
    /// the bytes, which the upload reads anyway.
    pub fn check_finite(&self) -> Result<(), WeightError> {
        let (size, mask) = match self.weight_dtype()? {
            WeightDType::BF16 => (2, 0x7f80u32),
            WeightDType::F16 => (2, 0x7c00),
            WeightDType::F32 => (4, 0x7f80_0000),
        };
        let bits = |c: &[u8]| {
            if size == 2 {
                u16::from_le_bytes([c[0], c[1]]) as u32
            } else {
                u32::from_le_bytes([c[0], c[1], c[2], c[3]])
            }
        };
        let Some(index) = self.bytes.chunks_exact(size).position(|c| bits(c) & mask == mask) else {
            return Ok(());
        };
        let b = bits(&self.bytes[index * size..]);
        let value = match self.weight_dtype()? {
            WeightDType::BF16 => f32::from_bits(b << 16),
            WeightDType::F16 => half::f16::from_bits(b as u16).to_f32(),
            WeightDType::F32 => f32::from_bits(b),
        };
        Err(WeightError::NonFinite { name: self.name.into(), path: self.path.into(), index, value: format!("{value}") })
    }

    /// Widens to f32 on the host; used for small vectors (norm weights, biases).
    pub fn to_f32(&self) -> Result<Vec<f32>, WeightError> {
        let b = self.bytes;
        Ok(match self.weight_dtype()? {
            WeightDType::BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            WeightDType::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            WeightDType::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        })
    }
}
