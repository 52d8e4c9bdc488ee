use std::sync::Arc;

use super::context::{Gpu, GpuError};

/// Element type of a resident weight matrix. 16-bit types are stored two per u32 and widened in
/// the shader, so a bf16 checkpoint costs the same GPU memory as on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightDType {
    BF16,
    F16,
    F32,
}

impl WeightDType {
    pub fn size(self) -> usize {
        match self {
            WeightDType::BF16 | WeightDType::F16 => 2,
            WeightDType::F32 => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightDType::BF16 => "bf16",
            WeightDType::F16 => "f16",
            WeightDType::F32 => "f32",
        }
    }
}

/// A contiguous block of rows of a weight matrix, small enough for one storage binding.
pub struct WeightChunk {
    pub buffer: wgpu::Buffer,
    pub row_start: usize,
    pub rows: usize,
}

/// A 2-D weight [rows, cols] (HF Linear layout: [out_features, in_features]) resident on the GPU,
/// split by rows into chunks when it exceeds the device's binding limit.
pub struct WeightTensor {
    pub name: String,
    pub dtype: WeightDType,
    pub rows: usize,
    pub cols: usize,
    pub chunks: Vec<WeightChunk>,
}

/// Bytes written since the last flush; wgpu stages queue writes in host memory until a submit,
/// so loading a 15 GB model must flush periodically to keep host memory flat.
const FLUSH_BYTES: u64 = 256 << 20;

impl WeightTensor {
    /// Uploads `bytes` (little-endian, `dtype`, row-major [rows, cols]).
    pub fn upload(
        gpu: &Arc<Gpu>,
        name: &str,
        dtype: WeightDType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<WeightTensor, GpuError> {
        assert_eq!(bytes.len(), rows * cols * dtype.size(), "caller checks tensor sizes");
        let row_bytes = (cols * dtype.size()) as u64;
        let mut max_rows = (gpu.max_binding_bytes / row_bytes.max(1)) as usize;
        if dtype.size() == 2 && cols % 2 == 1 {
            // A chunk must start on a u32 boundary, i.e. at an even element.
            max_rows -= max_rows % 2;
        }
        if max_rows == 0 {
            return Err(GpuError::TooLarge {
                what: format!("one row of {name}"),
                bytes: row_bytes,
                limit: gpu.max_binding_bytes,
            });
        }
        let mut chunks = Vec::new();
        let mut row_start = 0;
        let mut pending = 0u64;
        while row_start < rows {
            let n = max_rows.min(rows - row_start);
            let slice = &bytes[row_start * row_bytes as usize..(row_start + n) * row_bytes as usize];
            let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(name),
                size: (slice.len() as u64).max(16).div_ceil(4) * 4,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            gpu.write_padded(&buffer, 0, slice);
            pending += slice.len() as u64;
            if pending >= FLUSH_BYTES {
                gpu.queue.submit([]);
                gpu.wait()?;
                pending = 0;
            }
            chunks.push(WeightChunk { buffer, row_start, rows: n });
            row_start += n;
        }
        Ok(WeightTensor { name: name.to_string(), dtype, rows, cols, chunks })
    }

    pub fn bytes(&self) -> u64 {
        (self.rows * self.cols * self.dtype.size()) as u64
    }
}
