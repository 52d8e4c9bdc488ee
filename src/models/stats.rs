use std::sync::Arc;

use crate::gpu::{Gpu, GpuError};
use crate::ops::swiglu::{AccBlock, NeuronSums, ACC_WORDS};

/// Resident per-neuron statistics accumulators [groups, layers, width] (docs/statistics.md), filled by the
/// fused SwiGLU kernel during forward passes and read back once, folded to f64. Many cultures'
/// accumulators are cut into blocks of whole groups, each within one storage binding.
pub struct NeuronStats {
    pub groups: usize,
    pub layers: usize,
    pub width: usize,
    blocks: Vec<AccBlock>,
    gpu: Arc<Gpu>,
}

impl NeuronStats {
    pub fn new(gpu: &Arc<Gpu>, groups: usize, layers: usize, width: usize) -> Result<NeuronStats, GpuError> {
        let per_group = (layers * width * ACC_WORDS * 4) as u64;
        let per_block = (gpu.max_binding_bytes / per_group.max(1)) as usize;
        if per_block == 0 {
            return Err(GpuError::TooLarge {
                what: format!("one culture's statistics accumulators ({layers} layers x {width} neurons)"),
                bytes: per_group,
                limit: gpu.max_binding_bytes,
            });
        }
        let mut blocks = Vec::new();
        for first_group in (0..groups.max(1)).step_by(per_block) {
            let n = per_block.min(groups.max(1) - first_group);
            let buffer = gpu.storage_buffer("neuron statistics", n as u64 * per_group)?;
            blocks.push(AccBlock { buffer, first_group, groups: n });
        }
        let s = NeuronStats { groups, layers, width, blocks, gpu: gpu.clone() };
        s.reset();
        Ok(s)
    }

    /// The accumulator blocks, in group order.
    pub fn blocks(&self) -> &[AccBlock] {
        &self.blocks
    }

    pub fn reset(&self) {
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        for b in &self.blocks {
            enc.clear_buffer(&b.buffer, 0, None);
        }
        self.gpu.queue.submit([enc.finish()]);
    }

    /// The raw accumulator words, [groups, layers, width, ACC_WORDS].
    pub fn read_words(&self) -> Result<Vec<u32>, GpuError> {
        self.read_first_words(self.groups)
    }

    /// The raw accumulator words of the first `groups` groups only (a batch that used fewer
    /// slots than there are).
    pub fn read_first_words(&self, groups: usize) -> Result<Vec<u32>, GpuError> {
        let per_group = self.layers * self.width * ACC_WORDS;
        let groups = groups.min(self.groups);
        let mut words = Vec::with_capacity(groups * per_group);
        for b in &self.blocks {
            let n = b.groups.min(groups.saturating_sub(b.first_group));
            if n == 0 {
                break;
            }
            words.extend(self.gpu.read::<u32>(&b.buffer, 0, n * per_group)?);
        }
        Ok(words)
    }

    /// All groups, [groups, layers, width] in that order.
    pub fn read(&self) -> Result<NeuronSums, GpuError> {
        Ok(NeuronSums::from_words(&self.read_words()?))
    }
}

/// Per-neuron affine map a' = scale·a + shift applied inside the SwiGLU (docs/methods.md).
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

/// One neuron's affine map a' = scale·a + shift; `neuron` = layer · width + index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeuronEdit {
    pub neuron: usize,
    pub scale: f32,
    pub shift: f32,
}

/// Several intervention maps on the device at once ([maps, layers, width, 2] f32): each packed
/// sequence names the map it runs under, so one forward serves many ablation variants.
pub struct InterventionMaps {
    pub maps: usize,
    pub layers: usize,
    pub width: usize,
    pub(crate) buffer: wgpu::Buffer,
    /// Per map: the first layer where it differs from the identity (`layers` if nowhere).
    first_touched: Vec<usize>,
}

impl InterventionMaps {
    /// One map per list of edits (the identity elsewhere).
    pub fn new(gpu: &Gpu, layers: usize, width: usize, maps: &[Vec<NeuronEdit>]) -> anyhow::Result<Self> {
        let n = layers * width;
        let bytes = (maps.len() * n * 8) as u64;
        if bytes > gpu.max_binding_bytes {
            anyhow::bail!(
                "{} intervention maps of {n} neurons take {bytes} bytes, past the device's {}-byte binding",
                maps.len(),
                gpu.max_binding_bytes
            );
        }
        let mut data: Vec<f32> = std::iter::repeat_n([1.0f32, 0.0], maps.len().max(1) * n).flatten().collect();
        let mut first_touched = Vec::with_capacity(maps.len());
        for (m, edits) in maps.iter().enumerate() {
            let mut first = layers;
            for e in edits {
                if e.neuron >= n || !e.scale.is_finite() || !e.shift.is_finite() {
                    anyhow::bail!(
                        "intervention map {m}: neuron {} (of {n}) scale {} shift {}",
                        e.neuron,
                        e.scale,
                        e.shift
                    );
                }
                data[2 * (m * n + e.neuron)] = e.scale;
                data[2 * (m * n + e.neuron) + 1] = e.shift;
                if e.scale != 1.0 || e.shift != 0.0 {
                    first = first.min(e.neuron / width);
                }
            }
            first_touched.push(first);
        }
        let buffer = gpu.storage_from("intervention maps", &data)?;
        Ok(InterventionMaps { maps: maps.len(), layers, width, buffer, first_touched })
    }

    /// The first layer where `map` differs from the identity (`layers` if it never does).
    pub fn first_touched(&self, map: usize) -> usize {
        self.first_touched[map]
    }

    /// Most maps of `layers` x `width` neurons one buffer holds on `gpu`.
    pub fn capacity(gpu: &Gpu, layers: usize, width: usize) -> usize {
        (gpu.max_binding_bytes / (layers * width * 8).max(1) as u64) as usize
    }
}
