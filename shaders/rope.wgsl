// In-place rotary embedding, HF rotate_half convention:
//   out[d]     = x[d] cos[d] - x[d + h] sin[d]
//   out[d + h] = x[d + h] cos[d] + x[d] sin[d]          (h = head_dim / 2)
// cos/sin are per token ([tokens, h]), computed on the host from each token's position(s), so the
// same kernel serves plain RoPE and Qwen2.5-VL's sectioned M-RoPE.

struct Params {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    row_stride: u32,
    row_offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> cos_t: array<f32>;
@group(0) @binding(2) var<storage, read> sin_t: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let half = p.head_dim / 2u;
    let idx = gid.x + gid.y * nwg.x * 64u;
    if (idx >= p.tokens * p.heads * half) {
        return;
    }
    let d = idx % half;
    let h = (idx / half) % p.heads;
    let t = idx / (half * p.heads);
    let c = cos_t[t * half + d];
    let s = sin_t[t * half + d];
    let base = (p.row_offset + t) * p.row_stride + h * p.head_dim;
    let a = x[base + d];
    let b = x[base + d + half];
    x[base + d] = a * c - b * s;
    x[base + d + half] = b * c + a * s;
}
