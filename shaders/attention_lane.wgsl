// The same attention as attention.wgsl for CPU adapters (lavapipe): one invocation per
// (head, query), no workgroup memory and no barriers, which llvmpipe runs as slow per-lane
// context switches.
//
// llvmpipe (Mesa 22) ends an invocation's loops after 65535 iterations in all, silently. A
// query's keys are therefore walked in blocks of KB, one dispatch per block (`p.key_first` =
// the block's offset within each query's range), an online softmax carried between
// dispatches: the running max and sum in `ml`, the running weighted sum of values in `out`,
// divided by the sum after the query's last block. One dispatch costs at most about
// 2·KB·head_dim iterations (16.5k at head_dim 256).
// Adjacent invocations take adjacent queries of one head, so within a sequence they read the
// same key and value rows (llvmpipe runs invocations as SIMD lanes; equal addresses are cheap).

// Prepended: attention_common.wgsl (Params and bindings).

@group(0) @binding(6) var<storage, read_write> ml: array<f32>;

const KB: u32 = 32u;

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
    let t = item % p.tokens;
    let h = item / p.tokens;
    let kvh = h / (p.heads / p.kv_heads);
    let q_base = t * p.q_stride + h * p.head_dim;
    let start = kv_range[2u * t];
    let len = kv_range[2u * t + 1u] - start;
    if (p.key_first >= len) {
        return;
    }
    let j0 = start + p.key_first;
    let n = min(KB, len - p.key_first);
    let first = p.key_first == 0u;
    var m = -3.0e38;
    var l = 0.0;
    if (!first) {
        m = ml[2u * item];
        l = ml[2u * item + 1u];
    }
    var s: array<f32, KB>;
    var m_new = m;
    for (var jj = 0u; jj < n; jj++) {
        s[jj] = score(q_base, j0 + jj, kvh);
        m_new = max(m_new, s[jj]);
    }
    let c = exp(m - m_new);
    l = l * c;
    for (var jj = 0u; jj < n; jj++) {
        s[jj] = exp(s[jj] - m_new);
        l += s[jj];
    }
    let last = p.key_first + KB >= len;
    let v_base = j0 * p.kv_stride + kvh * p.head_dim;
    for (var d = 0u; d < p.head_dim; d++) {
        var a = 0.0;
        if (!first) {
            a = out[q_base + d] * c;
        }
        for (var jj = 0u; jj < n; jj++) {
            a = fma(s[jj], v_cache[v_base + jj * p.kv_stride + d], a);
        }
        if (last) {
            a = a / l;
        }
        out[q_base + d] = a;
    }
    ml[2u * item] = m_new;
    ml[2u * item + 1u] = l;
}
