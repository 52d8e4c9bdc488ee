// Causal GQA attention over a packed token stream, with an online (flash-style) softmax so no
// T x T matrix ever exists. Query t of head h attends to cache rows kv_range[t] = [start, end):
// the caller sets the range to the token's own sequence up to itself, so attention never crosses
// prompts. One workgroup per (head, query); keys are visited in blocks of 64.

// Prepended: attention_common.wgsl (Params and bindings).

const WG: u32 = 64u;
const MAX_HEAD_DIM: u32 = 256u;

var<workgroup> q_s: array<f32, 256>;
var<workgroup> prob: array<f32, 64>;
var<workgroup> red: array<f32, 64>;

fn reduce(v: f32, lane: u32, is_max: bool) -> f32 {
    red[lane] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) {
            let o = red[lane + stride];
            red[lane] = select(red[lane] + o, max(red[lane], o), is_max);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let h = wid.x;
    let t = wid.y + wid.z * nwg.y;
    if (t >= p.tokens) {
        return;
    }
    let lane = lid.x;
    let kvh = h / (p.heads / p.kv_heads);
    let q_base = t * p.q_stride + h * p.head_dim;
    for (var d = lane; d < p.head_dim; d += WG) {
        q_s[d] = q[q_base + d];
    }
    workgroupBarrier();
    let start = kv_range[2u * t];
    let end = kv_range[2u * t + 1u];
    var m = -3.0e38;
    var l = 0.0;
    var acc: array<f32, 4>;
    for (var j0 = start; j0 < end; j0 += WG) {
        let j = j0 + lane;
        var s = -3.0e38;
        if (j < end) {
            let k_base = j * p.kv_stride + kvh * p.head_dim;
            var dot = 0.0;
            for (var d = 0u; d < p.head_dim; d++) {
                dot = fma(q_s[d], k_cache[k_base + d], dot);
            }
            s = dot * p.scale;
        }
        let m_new = max(m, reduce(s, lane, true));
        var e = 0.0;
        if (j < end) {
            e = exp(s - m_new);
        }
        prob[lane] = e;
        let correction = exp(m - m_new);
        l = l * correction + reduce(e, lane, false);
        m = m_new;
        let n = min(WG, end - j0);
        for (var i = 0u; i < 4u; i++) {
            let d = lane + i * WG;
            if (d < p.head_dim) {
                var a = acc[i] * correction;
                for (var jj = 0u; jj < n; jj++) {
                    a = fma(prob[jj], v_cache[(j0 + jj) * p.kv_stride + kvh * p.head_dim + d], a);
                }
                acc[i] = a;
            }
        }
        workgroupBarrier();
    }
    let o_base = t * p.q_stride + h * p.head_dim;
    for (var i = 0u; i < 4u; i++) {
        let d = lane + i * WG;
        if (d < p.head_dim) {
            out[o_base + d] = acc[i] / l;
        }
    }
}
