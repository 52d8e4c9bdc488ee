use crate::gpu::{Binding, Recorder};

use super::shaders;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tokens: u32,
    width: u32,
    layer: u32,
    layers: u32,
    groups: u32,
    collect: u32,
    token_start: u32,
    zero: u32,
}

/// Tokens per dispatch: each thread walks its neuron down the tokens, and lavapipe caps shader
/// loops at 65535 iterations.
const TOKENS_PER_DISPATCH: usize = 32768;

/// Token group id meaning "not counted in the statistics".
pub const EXCLUDED: u32 = u32::MAX;
/// u32 words per (group, layer, neuron) accumulator: count, sum, sum_comp, sum_sq, sum_sq_comp.
pub const ACC_WORDS: usize = 5;

/// Buffers the fused SwiGLU reads besides gate/up.
pub struct SwigluSide<'a> {
    /// Per-token group id, or EXCLUDED.
    pub token_group: &'a wgpu::Buffer,
    /// [layers, width, 2] f32: scale, shift per neuron.
    pub intervention: &'a wgpu::Buffer,
    /// [groups, layers, width, ACC_WORDS] u32 accumulators; None skips statistics.
    pub acc: Option<(&'a wgpu::Buffer, usize)>,
    pub layer: usize,
    pub layers: usize,
}

/// gate ← (scale·silu(gate) + shift) · up, accumulating statistics of silu(gate).
pub fn swiglu(
    rec: &mut Recorder,
    gate: &wgpu::Buffer,
    up: &wgpu::Buffer,
    side: &SwigluSide<'_>,
    tokens: usize,
    width: usize,
) {
    let gpu = rec.gpu().clone();
    let pipeline = shaders::pipeline(&gpu, "swiglu_stats", shaders::SWIGLU_STATS);
    let (acc, groups) = match side.acc {
        Some((b, g)) => (b, g),
        None => (&gpu.scratch, 0),
    };
    for token_start in (0..tokens).step_by(TOKENS_PER_DISPATCH) {
        let params = Params {
            tokens: tokens.min(token_start + TOKENS_PER_DISPATCH) as u32,
            width: width as u32,
            layer: side.layer as u32,
            layers: side.layers as u32,
            groups: groups as u32,
            collect: side.acc.is_some() as u32,
            token_start: token_start as u32,
            zero: 0,
        };
        rec.dispatch(
            &pipeline,
            &params,
            &[
                Binding::Whole(gate),
                Binding::Whole(up),
                Binding::Whole(side.token_group),
                Binding::Whole(side.intervention),
                Binding::Whole(acc),
            ],
            [(width as u32).div_ceil(64), 1, 1],
        );
    }
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Host-side view of the accumulators, folded to f64.
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronSums {
    pub count_pos: Vec<u64>,
    pub sum: Vec<f64>,
    pub sum_sq: Vec<f64>,
}

impl NeuronSums {
    pub fn from_words(words: &[u32]) -> NeuronSums {
        let n = words.len() / ACC_WORDS;
        let f = |w: u32| f32::from_bits(w) as f64;
        let mut s =
            NeuronSums { count_pos: Vec::with_capacity(n), sum: Vec::with_capacity(n), sum_sq: Vec::with_capacity(n) };
        for c in words.chunks_exact(ACC_WORDS) {
            s.count_pos.push(c[0] as u64);
            s.sum.push(f(c[1]) - f(c[2]));
            s.sum_sq.push(f(c[3]) - f(c[4]));
        }
        s
    }
}

/// CPU reference for one layer: returns h and adds statistics into `sums` ([groups, width] slices).
pub fn swiglu_ref(
    gate: &[f32],
    up: &[f32],
    token_group: &[u32],
    scale_shift: &[f32],
    width: usize,
    sums: &mut NeuronSums,
) -> Vec<f32> {
    let mut h = vec![0f32; gate.len()];
    for (t, &g_id) in token_group.iter().enumerate() {
        for j in 0..width {
            let i = t * width + j;
            let a = silu(gate[i]);
            h[i] = (scale_shift[2 * j] * a + scale_shift[2 * j + 1]) * up[i];
            if g_id != EXCLUDED {
                let s = g_id as usize * width + j;
                sums.count_pos[s] += (a > 0.0) as u64;
                sums.sum[s] += a as f64;
                sums.sum_sq[s] += (a as f64) * (a as f64);
            }
        }
    }
    h
}
