//! A checkpoint held on the host in f32 for editing, written back in each tensor's own dtype.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::weights::WeightStore;

pub struct Tensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Every tensor of a checkpoint, by name.
pub struct Checkpoint {
    pub tensors: BTreeMap<String, Tensor>,
}

/// A 2-D view for row/column edits of a [rows, cols] matrix.
pub struct Matrix<'a> {
    pub cols: usize,
    pub data: &'a mut [f32],
}

impl Matrix<'_> {
    pub fn set(&mut self, r: usize, c: usize, v: f32) {
        self.data[r * self.cols + c] = v;
    }

    pub fn zero_row(&mut self, r: usize) {
        self.data[r * self.cols..(r + 1) * self.cols].fill(0.0);
    }

    pub fn zero_col(&mut self, c: usize) {
        for row in self.data.chunks_exact_mut(self.cols) {
            row[c] = 0.0;
        }
    }
}

impl Checkpoint {
    pub fn load(store: &WeightStore) -> anyhow::Result<Checkpoint> {
        let mut tensors = BTreeMap::new();
        for name in store.names() {
            let t = store.get(name)?;
            let data = t.to_f32()?;
            tensors.insert(name.to_string(), Tensor { dtype: t.dtype, shape: t.shape.to_vec(), data });
        }
        Ok(Checkpoint { tensors })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn get_mut(&mut self, name: &str, shape: &[usize]) -> anyhow::Result<&mut Tensor> {
        let t = self.tensors.get_mut(name).with_context(|| format!("tensor {name} is missing from the base model"))?;
        if t.shape != shape {
            bail!("tensor {name} has shape {:?}, the config implies {shape:?}", t.shape);
        }
        Ok(t)
    }

    pub fn vector(&mut self, name: &str, len: usize) -> anyhow::Result<&mut [f32]> {
        Ok(&mut self.get_mut(name, &[len])?.data)
    }

    pub fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> anyhow::Result<Matrix<'_>> {
        Ok(Matrix { cols, data: &mut self.get_mut(name, &[rows, cols])?.data })
    }

    /// One `model.safetensors`, every tensor in the dtype it was read in.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let bytes: Vec<(&String, Vec<u8>)> = self.tensors.iter().map(|(n, t)| (n, encode(t))).collect();
        let views = bytes
            .iter()
            .zip(self.tensors.values())
            .map(|((n, b), t)| Ok(((*n).clone(), TensorView::new(t.dtype, t.shape.clone(), b)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(views, Some(meta), path).with_context(|| format!("writing {}", path.display()))
    }
}

fn encode(t: &Tensor) -> Vec<u8> {
    // Load already refused any other dtype.
    match t.dtype {
        Dtype::BF16 => t.data.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
        Dtype::F16 => t.data.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
        _ => t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}
