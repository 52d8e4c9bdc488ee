use crate::gpu::{Binding, Gpu, Precision, Recorder, WeightTensor};

use super::matmul_coop::{CoopOps, CoopTile};
use super::shaders;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    y_stride: u32,
    y_col_offset: u32,
    y_row_offset: u32,
    has_bias: u32,
    accumulate: u32,
}

/// Where and how the product lands in `y`.
#[derive(Clone, Copy, Default)]
pub struct MatmulOut {
    /// First row of `y` written (the KV cache slot of the first token, for K/V projections).
    pub row_offset: usize,
    /// Add to what `y` holds instead of overwriting it (fuses the residual add).
    pub accumulate: bool,
}

/// The matmul kernels: 64x64 or 128x128 register-tiled workgroups for many rows on GPUs, split-K over a workgroup
/// (MB rows x 4 columns each) for few rows, barrier-free lane blocks for CPU adapters (where
/// tiles staged through workgroup memory turn into gathers), and cooperative-matrix tiles in
/// fast mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulKernel {
    /// (16·block)² output tiles, a block x block register tile per invocation: 4 or 8.
    Tiled {
        block: u32,
    },
    SplitK {
        rows_per_group: u32,
    },
    /// One 8 x 8 output block per invocation, no workgroup memory: CPU adapters, many rows.
    Lane,
    /// Tensor cores through `coop_mat16x16` (fast mode), or their scalar emulation in tests.
    Coop {
        tile: CoopTile,
        ops: CoopOps,
    },
}

impl MatmulKernel {
    /// Split-K pays a 64-lane reduction per output block, so it is used for few rows, where
    /// nothing else fills the device; CPU adapters take the barrier-free lane kernel for the
    /// rest (on lavapipe it beat split-K on the vision tower's K = 1176 patch embedding too).
    /// Fast mode takes tensor cores from 16 rows up, where a 16-row fragment is mostly filled.
    pub fn choose(gpu: &Gpu, m: usize) -> MatmulKernel {
        let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
        if m >= 16 {
            match gpu.precision {
                Precision::Fast { subgroup } => {
                    return MatmulKernel::Coop { tile: CoopTile::for_subgroup(subgroup), ops: CoopOps::Hardware }
                }
                Precision::FastEmulated => {
                    return MatmulKernel::Coop { tile: CoopTile::EMULATED, ops: CoopOps::Emulated }
                }
                Precision::Exact => {}
            }
        }
        if m == 1 {
            MatmulKernel::SplitK { rows_per_group: 1 }
        } else if m <= 8 {
            MatmulKernel::SplitK { rows_per_group: 4 }
        } else if cpu {
            MatmulKernel::Lane
        } else if m >= 128 {
            MatmulKernel::Tiled { block: 8 }
        } else {
            MatmulKernel::Tiled { block: 4 }
        }
    }
}

/// y[m, :] (+)= x[m, :] · wᵀ + bias over `m` rows; x is [m, w.cols], y rows have w.rows columns.
pub fn matmul(
    rec: &mut Recorder,
    x: &wgpu::Buffer,
    w: &WeightTensor,
    bias: Option<&wgpu::Buffer>,
    y: &wgpu::Buffer,
    m: usize,
    out: MatmulOut,
) {
    let kernel = MatmulKernel::choose(rec.gpu(), m);
    matmul_with(rec, kernel, x, w, bias, y, m, out)
}

#[allow(clippy::too_many_arguments)]
pub fn matmul_with(
    rec: &mut Recorder,
    kernel: MatmulKernel,
    x: &wgpu::Buffer,
    w: &WeightTensor,
    bias: Option<&wgpu::Buffer>,
    y: &wgpu::Buffer,
    m: usize,
    out: MatmulOut,
) {
    let gpu = rec.gpu().clone();
    let pipeline = match kernel {
        MatmulKernel::Tiled { block } => shaders::matmul_tiled_pipeline(&gpu, w.dtype, block),
        MatmulKernel::SplitK { rows_per_group } => shaders::matmul_splitk_pipeline(&gpu, w.dtype, rows_per_group),
        MatmulKernel::Lane => shaders::matmul_lane_pipeline(&gpu, w.dtype),
        MatmulKernel::Coop { tile, ops } => shaders::matmul_coop_pipeline(&gpu, w.dtype, &tile, ops),
    };
    // Unused bias slot still needs a buffer bound; x serves (it is never read then).
    let bias_buf = bias.unwrap_or(x);
    for chunk in &w.chunks {
        let params = Params {
            m: m as u32,
            n: chunk.rows as u32,
            k: w.cols as u32,
            y_stride: w.rows as u32,
            y_col_offset: chunk.row_start as u32,
            y_row_offset: out.row_offset as u32,
            has_bias: bias.is_some() as u32,
            accumulate: out.accumulate as u32,
        };
        let groups = match kernel {
            MatmulKernel::Tiled { block } => {
                [(chunk.rows as u32).div_ceil(16 * block), (m as u32).div_ceil(16 * block), 1]
            }
            MatmulKernel::SplitK { rows_per_group } => {
                let col_groups = (chunk.rows as u32).div_ceil(4);
                [col_groups.min(65535), (m as u32).div_ceil(rows_per_group), col_groups.div_ceil(65535)]
            }
            MatmulKernel::Coop { tile, .. } => {
                [(chunk.rows as u32).div_ceil(tile.cols()), (m as u32).div_ceil(tile.rows()), 1]
            }
            MatmulKernel::Lane => {
                let blocks = (chunk.rows as u32).div_ceil(8) * (m as u32).div_ceil(8);
                let groups = blocks.div_ceil(64);
                [groups.min(65535), groups.div_ceil(65535), 1]
            }
        };
        rec.dispatch(
            &pipeline,
            &params,
            &[Binding::Whole(x), Binding::Whole(&chunk.buffer), Binding::Whole(bias_buf), Binding::Whole(y)],
            groups,
        );
    }
}

/// CPU reference: y = x · wᵀ + bias with f64 accumulation.
pub fn matmul_ref(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut y = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for kk in 0..k {
                s += x[i * k + kk] as f64 * w[j * k + kk] as f64;
            }
            if let Some(b) = bias {
                s += b[j] as f64;
            }
            y[i * n + j] = s as f32;
        }
    }
    y
}
