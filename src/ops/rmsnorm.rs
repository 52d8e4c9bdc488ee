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
    let gpu = rec.gpu().clone();
    let pipeline = shaders::pipeline(&gpu, "rmsnorm", shaders::RMSNORM);
    let params = Params { rows: rows as u32, width: width as u32, eps, _pad: 0 };
    let [_, y_groups, z_groups] = row_grid(1, rows);
    // rmsnorm puts rows on x (one workgroup per row) to keep the shader's row index simple.
    rec.dispatch(
        &pipeline,
        &params,
        &[Binding::Whole(x), Binding::Whole(weight), Binding::Whole(y)],
        [y_groups, z_groups, 1],
    );
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
