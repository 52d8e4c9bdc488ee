// Shared by the attention kernels: query t of head h attends to cache rows kv_range[t] =
// [start, end) of its KV head (GQA), with the softmax scale given.

struct Params {
    tokens: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    q_stride: u32,
    kv_stride: u32,
    scale: f32,
    // The lane kernel's key block (offset within each query's range); unused by the others.
    key_first: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read> kv_range: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
