use std::sync::Arc;

use crate::gpu::{Gpu, GpuError};
use crate::ops::swiglu::{NeuronSums, ACC_WORDS};

/// Resident per-neuron statistics accumulators [groups, layers, width] (DESIGN §6), filled by the
/// fused SwiGLU kernel during forward passes and read back once, folded to f64.
pub struct NeuronStats {
    pub groups: usize,
    pub layers: usize,
    pub width: usize,
    pub(crate) buffer: wgpu::Buffer,
    gpu: Arc<Gpu>,
}

impl NeuronStats {
    pub fn new(gpu: &Arc<Gpu>, groups: usize, layers: usize, width: usize) -> Result<NeuronStats, GpuError> {
        let words = groups * layers * width * ACC_WORDS;
        let buffer = gpu.storage_buffer("neuron statistics", (words * 4) as u64)?;
        let s = NeuronStats { groups, layers, width, buffer, gpu: gpu.clone() };
        s.reset();
        Ok(s)
    }

    pub fn reset(&self) {
        let words = self.groups * self.layers * self.width * ACC_WORDS;
        self.gpu.write_padded(&self.buffer, 0, bytemuck::cast_slice(&vec![0u32; words]));
    }

    /// The raw accumulator words, [groups, layers, width, ACC_WORDS].
    pub fn read_words(&self) -> Result<Vec<u32>, GpuError> {
        self.gpu.read(&self.buffer, 0, self.groups * self.layers * self.width * ACC_WORDS)
    }

    /// All groups, [groups, layers, width] in that order.
    pub fn read(&self) -> Result<NeuronSums, GpuError> {
        let words: Vec<u32> = self.gpu.read(&self.buffer, 0, self.groups * self.layers * self.width * ACC_WORDS)?;
        Ok(NeuronSums::from_words(&words))
    }
}

/// Per-neuron affine map a' = scale·a + shift applied inside the SwiGLU (DESIGN §5).
pub struct Intervention {
    pub layers: usize,
    pub width: usize,
    pub(crate) buffer: wgpu::Buffer,
    gpu: Arc<Gpu>,
}

impl Intervention {
    /// scale 1, shift 0 everywhere: the unmodified model.
    pub fn identity(gpu: &Arc<Gpu>, layers: usize, width: usize) -> Result<Intervention, GpuError> {
        let data: Vec<f32> = (0..layers * width).flat_map(|_| [1.0f32, 0.0]).collect();
        Ok(Intervention { layers, width, buffer: gpu.storage_from("intervention", &data)?, gpu: gpu.clone() })
    }

    /// Sets scale and shift, each [layers · width].
    pub fn set(&self, scale: &[f32], shift: &[f32]) -> anyhow::Result<()> {
        let n = self.layers * self.width;
        if scale.len() != n || shift.len() != n {
            anyhow::bail!(
                "intervention needs {} x {} = {n} values per map, got {} scales and {} shifts",
                self.layers,
                self.width,
                scale.len(),
                shift.len()
            );
        }
        let data: Vec<f32> = scale.iter().zip(shift).flat_map(|(&s, &b)| [s, b]).collect();
        self.gpu.write_padded(&self.buffer, 0, bytemuck::cast_slice(&data));
        Ok(())
    }

    /// Zero ablation of the neurons where `keep` is 0 (the fixture's `ablate.mask` convention).
    pub fn set_mask(&self, keep: &[f32]) -> anyhow::Result<()> {
        self.set(keep, &vec![0.0; keep.len()])
    }

    pub fn reset(&self) {
        let n = self.layers * self.width;
        self.set(&vec![1.0; n], &vec![0.0; n]).expect("sizes match by construction");
    }
}
