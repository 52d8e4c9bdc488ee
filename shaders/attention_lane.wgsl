// The same attention as attention.wgsl for CPU adapters (lavapipe): one invocation per
// (head, query), no workgroup memory and no barriers, which llvmpipe runs as slow per-lane
// context switches.

// Prepended: attention_common.wgsl (Params and bindings).

fn score(q_base: u32, j: u32, kvh: u32) -> f32 {
    let k_base = j * p.kv_stride + kvh * p.head_dim;
    var dot = 0.0;
    for (var d = 0u; d < p.head_dim; d++) {
        dot = fma(q[q_base + d], k_cache[k_base + d], dot);
    }
    return dot * p.scale;
}

// Adjacent invocations take adjacent queries of one head, so they read the same key and value
// rows (llvmpipe runs invocations as SIMD lanes; equal addresses are cheap, distinct ones are
// gathers). The value sum is built 16 dimensions at a time in registers rather than
// read-modify-writing the output once per key.
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let item = gid.x + (gid.y + gid.z * nwg.y) * nwg.x * 64u;
    if (item >= p.tokens * p.heads) {
        return;
    }
    let t = item % p.tokens;
    let h = item / p.tokens;
    let kvh = h / (p.heads / p.kv_heads);
    let q_base = t * p.q_stride + h * p.head_dim;
    let start = kv_range[2u * t];
    let end = kv_range[2u * t + 1u];
    let last_d = p.head_dim - 1u;
    for (var d0 = 0u; d0 < p.head_dim; d0 += 16u) {
        // An online softmax per block of 16 dimensions: each block rereads the scores (one
        // dot product per key), the values for its dimensions stay in registers.
        var m = -3.0e38;
        var l = 0.0;
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        for (var j = start; j < end; j++) {
            let s = score(q_base, j, kvh);
            let m_new = max(m, s);
            let c = vec4<f32>(exp(m - m_new));
            let e = exp(s - m_new);
            l = l * c.x + e;
            m = m_new;
            let w = vec4<f32>(e);
            let v = j * p.kv_stride + kvh * p.head_dim;
            a0 = fma(w, value4(v, d0, last_d), a0 * c);
            a1 = fma(w, value4(v, d0 + 4u, last_d), a1 * c);
            a2 = fma(w, value4(v, d0 + 8u, last_d), a2 * c);
            a3 = fma(w, value4(v, d0 + 12u, last_d), a3 * c);
        }
        let inv = vec4<f32>(1.0 / l);
        store4(q_base, d0, a0 * inv);
        store4(q_base, d0 + 4u, a1 * inv);
        store4(q_base, d0 + 8u, a2 * inv);
        store4(q_base, d0 + 12u, a3 * inv);
    }
}

// Four value components from d on; past the head's last dimension it rereads that one (the
// results there are never stored), so the hot loop has no branches.
fn value4(base: u32, d: u32, last_d: u32) -> vec4<f32> {
    return vec4<f32>(v_cache[base + min(d, last_d)], v_cache[base + min(d + 1u, last_d)],
                     v_cache[base + min(d + 2u, last_d)], v_cache[base + min(d + 3u, last_d)]);
}

fn store4(base: u32, d: u32, a: vec4<f32>) {
    for (var i = 0u; i < 4u; i++) {
        if (d + i < p.head_dim) {
            out[base + d + i] = a[i];
        }
    }
}
