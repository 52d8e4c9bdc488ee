// The same attention as attention.wgsl for CPU adapters (lavapipe): one invocation per
// (head, query), no workgroup memory and no barriers, which llvmpipe runs as slow per-lane
// context switches. Two passes over the keys: the first finds the softmax max and sum, the
// second adds each weighted value row straight into this query's output, so no head_dim-sized
// private array is needed.

struct Params {
    tokens: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    q_stride: u32,
    kv_stride: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read> kv_range: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

fn score(q_base: u32, j: u32, kvh: u32) -> f32 {
    let k_base = j * p.kv_stride + kvh * p.head_dim;
    var dot = 0.0;
    for (var d = 0u; d < p.head_dim; d++) {
        dot = fma(q[q_base + d], k_cache[k_base + d], dot);
    }
    return dot * p.scale;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let item = gid.x + (gid.y + gid.z * nwg.y) * nwg.x * 64u;
    if (item >= p.tokens * p.heads) {
        return;
    }
    let t = item / p.heads;
    let h = item % p.heads;
    let kvh = h / (p.heads / p.kv_heads);
    let q_base = t * p.q_stride + h * p.head_dim;
    let start = kv_range[2u * t];
    let end = kv_range[2u * t + 1u];
    var m = -3.0e38;
    var l = 0.0;
    for (var j = start; j < end; j++) {
        let s = score(q_base, j, kvh);
        let m_new = max(m, s);
        l = l * exp(m - m_new) + exp(s - m_new);
        m = m_new;
    }
    let o_base = q_base;
    for (var d = 0u; d < p.head_dim; d++) {
        out[o_base + d] = 0.0;
    }
    for (var j = start; j < end; j++) {
        let w = exp(score(q_base, j, kvh) - m) / l;
        let v_base = j * p.kv_stride + kvh * p.head_dim;
        for (var d = 0u; d < p.head_dim; d++) {
            out[o_base + d] = fma(w, v_cache[v_base + d], out[o_base + d]);
        }
    }
}
