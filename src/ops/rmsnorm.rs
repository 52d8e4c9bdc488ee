use crate::gpu::{Binding, Recorder};

use super::{row_grid, shaders};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    width: u32,
    eps: f32,
    _pad: u32,
}

/// Which RMSNorm shader runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmsNormKernel {
    /// One 256-lane workgroup per row, a barrier tree: GPUs.
    Workgroup,
    /// One invocation per row: CPU adapters, where barriers cost more than the arithmetic.
    Lane,
}

impl RmsNormKernel {
    pub fn choose(gpu: &crate::gpu::Gpu) -> RmsNormKernel {
        if gpu.info.device_type == wgpu::DeviceType::Cpu {
            RmsNormKernel::Lane
        } else {
            RmsNormKernel::Workgroup
        }
    }
}

/// y = x / sqrt(mean(x²) + eps) · weight, row by row (weight is f32 [width]).
pub fn rmsnorm(
    rec: &mut Recorder,
    x: &wgpu::Buffer,
    weight: &wgpu::Buffer,
    y: &wgpu::Buffer,
    rows: usize,
    width: usize,
    eps: f32,
) {
    let kernel = RmsNormKernel::choose(rec.gpu());
    rmsnorm_with(rec, kernel, x, weight, y, rows, width, eps)
}

#[allow(clippy::too_many_arguments)]
pub fn rmsnorm_with(
    rec: &mut Recorder,
    kernel: RmsNormKernel,
    x: &wgpu::Buffer,
    weight: &wgpu::Buffer,
    y: &wgpu::Buffer,
    rows: usize,
    width: usize,
    eps: f32,
) {
    let gpu = rec.gpu().clone();
    let params = Params { rows: rows as u32, width: width as u32, eps, _pad: 0 };
    let bindings = [Binding::Whole(x), Binding::Whole(weight), Binding::Whole(y)];
    match kernel {
        RmsNormKernel::Lane => {
            // One invocation per row, 64 rows per workgroup (see rmsnorm_lane.wgsl).
            let pipeline = shaders::pipeline(&gpu, "rmsnorm_lane", shaders::RMSNORM_LANE);
            let groups = rows.div_ceil(64) as u32;
            rec.dispatch(&pipeline, &params, &bindings, [groups.min(65535), groups.div_ceil(65535), 1]);
        }
        RmsNormKernel::Workgroup => {
            let pipeline = shaders::pipeline(&gpu, "rmsnorm", shaders::RMSNORM);
            let [_, y_groups, z_groups] = row_grid(1, rows);
            // One workgroup per row, rows on x to keep the shader's row index simple.
            rec.dispatch(&pipeline, &params, &bindings, [y_groups, z_groups, 1]);
        }
    }
}

pub fn rmsnorm_ref(x: &[f32], weight: &[f32], width: usize, eps: f32) -> Vec<f32> {
    x.chunks(width)
        .flat_map(|row| {
            let ms = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / width as f64;
            let inv = 1.0 / (ms + eps as f64).sqrt();
            row.iter().zip(weight).map(move |(&v, &w)| (w as f64 * v as f64 * inv) as f32).collect::<Vec<_>>()
        })
        .collect()
}
