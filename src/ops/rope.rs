use crate::gpu::{Binding, Recorder};

use super::shaders;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    row_stride: u32,
    row_offset: u32,
    _pad: [u32; 3],
}

/// Per-token rotary tables, [tokens, head_dim/2] each.
pub struct RopeTables {
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

/// HF's inverse frequencies for a rotary dimension `dim`: 1 / theta^(2i/dim), i < dim/2, with
/// the same f32 steps as torch (exponent in f32, pow rounded to f32, then the f32 reciprocal).
pub fn inv_freq(dim: usize, theta: f64) -> Vec<f32> {
    (0..dim / 2)
        .map(|i| {
            let exponent = (2 * i) as f32 / dim as f32;
            1.0f32 / (theta.powf(exponent as f64) as f32)
        })
        .collect()
}

/// Per-token cos/sin tables ([tokens, freqs.len()] each): angle_i = f32(freqs[i] · pos), where
/// `pos` is the token's position number `section_of[i]` (t/h/w for M-RoPE, h/w for the vision
/// tower, always 0 for plain RoPE); `positions` has `stride` entries per token. cos/sin are taken
/// of the f32 angle in f64 and rounded, as accurate as torch's f32 cos/sin.
pub fn rope_tables(positions: &[i64], stride: usize, freqs: &[f32], section_of: &[usize]) -> RopeTables {
    let half = freqs.len();
    let tokens = positions.len() / stride;
    let mut cos = Vec::with_capacity(tokens * half);
    let mut sin = Vec::with_capacity(tokens * half);
    for t in 0..tokens {
        for i in 0..half {
            let pos = positions[t * stride + section_of[i]] as f32;
            let angle = (freqs[i] * pos) as f64;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    RopeTables { cos, sin }
}

/// Rotates `heads` heads of rows [row_offset, row_offset + tokens) of `x` in place.
#[allow(clippy::too_many_arguments)]
pub fn rope(
    rec: &mut Recorder,
    cos: &wgpu::Buffer,
    sin: &wgpu::Buffer,
    x: &wgpu::Buffer,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    row_offset: usize,
) {
    let gpu = rec.gpu().clone();
    let pipeline = shaders::pipeline(&gpu, "rope", shaders::ROPE);
    let params = Params {
        tokens: tokens as u32,
        heads: heads as u32,
        head_dim: head_dim as u32,
        row_stride: (heads * head_dim) as u32,
        row_offset: row_offset as u32,
        _pad: [0; 3],
    };
    let groups = ((tokens * heads * head_dim / 2) as u32).div_ceil(64);
    let gx = groups.min(65535);
    let gy = groups.div_ceil(65535);
    rec.dispatch(&pipeline, &params, &[Binding::Whole(cos), Binding::Whole(sin), Binding::Whole(x)], [gx, gy, 1]);
}

pub fn rope_ref(x: &[f32], tables: &RopeTables, heads: usize, head_dim: usize) -> Vec<f32> {
    let half = head_dim / 2;
    let mut out = x.to_vec();
    let tokens = x.len() / (heads * head_dim);
    for t in 0..tokens {
        for h in 0..heads {
            let base = (t * heads + h) * head_dim;
            for d in 0..half {
                let (c, s) = (tables.cos[t * half + d], tables.sin[t * half + d]);
                let (a, b) = (x[base + d], x[base + d + half]);
                out[base + d] = a * c - b * s;
                out[base + d + half] = b * c + a * s;
            }
        }
    }
    out
}
