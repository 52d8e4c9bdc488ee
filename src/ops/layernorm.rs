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

/// y = LayerNorm(x) · weight + bias, row by row (weight, bias f32 [width]).
#[allow(clippy::too_many_arguments)]
pub fn layernorm(
    rec: &mut Recorder,
    x: &wgpu::Buffer,
    weight: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    y: &wgpu::Buffer,
    rows: usize,
    width: usize,
    eps: f32,
) {
    let gpu = rec.gpu().clone();
    let pipeline = shaders::pipeline(&gpu, "layernorm", shaders::LAYERNORM);
    let params = Params { rows: rows as u32, width: width as u32, eps, _pad: 0 };
    let [_, y_groups, z_groups] = row_grid(1, rows);
    rec.dispatch(
        &pipeline,
        &params,
        &[Binding::Whole(x), Binding::Whole(weight), Binding::Whole(bias), Binding::Whole(y)],
        [y_groups, z_groups, 1],
    );
}

pub fn layernorm_ref(x: &[f32], weight: &[f32], bias: &[f32], width: usize, eps: f32) -> Vec<f32> {
    x.chunks(width)
        .flat_map(|row| {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / width as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / width as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            row.iter()
                .zip(weight.iter().zip(bias))
                .map(move |(&v, (&w, &b))| ((v as f64 - mean) * inv * w as f64 + b as f64) as f32)
                .collect::<Vec<_>>()
        })
        .collect()
}
