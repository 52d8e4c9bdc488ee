use crate::gpu::{Binding, Recorder};

use super::{row_grid, shaders};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tokens: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    q_stride: u32,
    kv_stride: u32,
    scale: f32,
    key_first: u32,
}

pub const MAX_HEAD_DIM: usize = 256;

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub tokens: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// The longest key range of any query (the lane kernel walks keys in blocks).
    pub max_keys: usize,
}

/// The longest [start, end) range of `kv_range` (2 u32 per query).
pub fn max_keys(kv_range: &[u32]) -> usize {
    kv_range.chunks(2).map(|r| r[1].saturating_sub(r[0]) as usize).max().unwrap_or(0)
}

/// Keys per dispatch of the lane kernel (KB in attention_lane.wgsl).
pub const LANE_KEYS: usize = 32;

/// out[t] = softmax(q[t] · K[range]ᵀ · scale) · V[range] per head, where `kv_range` holds
/// [start, end) cache rows per query token (2 u32 per token).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    rec: &mut Recorder,
    q: &wgpu::Buffer,
    k_cache: &wgpu::Buffer,
    v_cache: &wgpu::Buffer,
    kv_range: &wgpu::Buffer,
    out: &wgpu::Buffer,
    s: AttentionShape,
    scale: f32,
) {
    let kernel = AttentionKernel::choose(rec.gpu(), &s);
    attention_with(rec, kernel, q, k_cache, v_cache, kv_range, out, s, scale)
}

#[allow(clippy::too_many_arguments)]
pub fn attention_with(
    rec: &mut Recorder,
    kernel: AttentionKernel,
    q: &wgpu::Buffer,
    k_cache: &wgpu::Buffer,
    v_cache: &wgpu::Buffer,
    kv_range: &wgpu::Buffer,
    out: &wgpu::Buffer,
    s: AttentionShape,
    scale: f32,
) {
    assert!(s.head_dim <= MAX_HEAD_DIM && s.heads.is_multiple_of(s.kv_heads), "checked when the config is read");
    let gpu = rec.gpu().clone();
    let pipeline = match kernel {
        AttentionKernel::Workgroup => shaders::attention_pipeline(&gpu, "attention", shaders::ATTENTION),
        AttentionKernel::Lane => shaders::attention_pipeline(&gpu, "attention_lane", shaders::ATTENTION_LANE),
        AttentionKernel::Block => shaders::attention_block_pipeline(&gpu, s.head_dim),
    };
    let params = Params {
        tokens: s.tokens as u32,
        heads: s.heads as u32,
        kv_heads: s.kv_heads as u32,
        head_dim: s.head_dim as u32,
        q_stride: (s.heads * s.head_dim) as u32,
        kv_stride: (s.kv_heads * s.head_dim) as u32,
        scale,
        key_first: 0,
    };
    let bindings = [
        Binding::Whole(q),
        Binding::Whole(k_cache),
        Binding::Whole(v_cache),
        Binding::Whole(kv_range),
        Binding::Whole(out),
    ];
    match kernel {
        AttentionKernel::Workgroup => rec.dispatch(&pipeline, &params, &bindings, row_grid(s.heads as u32, s.tokens)),
        AttentionKernel::Block => {
            rec.dispatch(&pipeline, &params, &bindings, row_grid(s.heads as u32, s.tokens.div_ceil(BLOCK_QUERIES)))
        }
        AttentionKernel::Lane => {
            // One dispatch per block of LANE_KEYS keys (see attention_lane.wgsl): the longest
            // range sets how many. The running max and sum live in `ml` between them.
            // 8 bytes per query and head: smaller than q, so within every limit q met.
            let ml = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("attention max and sum"),
                size: ((s.tokens * s.heads * 2 * 4) as u64).max(16),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            let mut all = bindings.to_vec();
            all.push(Binding::Whole(&ml));
            for key_first in (0..s.max_keys.max(1)).step_by(LANE_KEYS) {
                let params = Params { key_first: key_first as u32, ..params };
                rec.dispatch(&pipeline, &params, &all, row_grid(1, (s.heads * s.tokens).div_ceil(64)));
            }
        }
    }
}

/// Queries per workgroup of the block kernel (QB in attention_block.wgsl).
pub const BLOCK_QUERIES: usize = 16;

/// Which attention shader runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKernel {
    /// One 64-lane workgroup per (head, query), keys in parallel: GPUs, few queries (decode).
    Workgroup,
    /// One workgroup per (head, 16 queries) sharing each staged K/V tile: GPUs, prefill.
    Block,
    /// One invocation per (head, query), keys in sequence: CPU adapters, where workgroup
    /// barriers cost more than the arithmetic (about 10x on llvmpipe).
    Lane,
}

impl AttentionKernel {
    pub fn choose(gpu: &crate::gpu::Gpu, s: &AttentionShape) -> AttentionKernel {
        if gpu.info.device_type == wgpu::DeviceType::Cpu {
            AttentionKernel::Lane
        } else if s.tokens >= BLOCK_QUERIES
            && AttentionKernel::block_workgroup_bytes(s.head_dim) <= gpu.limits.max_compute_workgroup_storage_size
        {
            AttentionKernel::Block
        } else {
            AttentionKernel::Workgroup
        }
    }

    /// Workgroup memory of the block kernel: K and V tiles, partial dot products, ranges.
    pub fn block_workgroup_bytes(head_dim: usize) -> u32 {
        let (qb, kb, split) = (BLOCK_QUERIES, 16, 4);
        (4 * (2 * kb * head_dim + qb * kb * split + 2 * qb)) as u32
    }
}

/// CPU reference: materialises each query's scores (fine at test sizes), f64 softmax.
pub fn attention_ref(q: &[f32], k: &[f32], v: &[f32], kv_range: &[u32], s: AttentionShape, scale: f32) -> Vec<f32> {
    let (hd, group) = (s.head_dim, s.heads / s.kv_heads);
    let kv_stride = s.kv_heads * hd;
    let mut out = vec![0f32; s.tokens * s.heads * hd];
    for t in 0..s.tokens {
        let (start, end) = (kv_range[2 * t] as usize, kv_range[2 * t + 1] as usize);
        for h in 0..s.heads {
            let kvh = h / group;
            let qv = &q[(t * s.heads + h) * hd..][..hd];
            let scores: Vec<f64> = (start..end)
                .map(|j| {
                    qv.iter().zip(&k[j * kv_stride + kvh * hd..][..hd]).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>()
                        * scale as f64
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..hd {
                let acc: f64 = (start..end).zip(&e).map(|(j, p)| p * v[j * kv_stride + kvh * hd + d] as f64).sum();
                out[(t * s.heads + h) * hd + d] = (acc / z) as f32;
            }
        }
    }
    out
}
