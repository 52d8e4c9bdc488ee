// y[m, n] (+)= sum_k x[m, k] * w[n, k] + bias[n], for few rows (decode, LM head on chosen rows)
// and for CPU adapters. The 64 invocations of a workgroup split K: neighbours read neighbouring
// k, so loads are contiguous (what lavapipe's SIMD lanes and a GPU's coalescer both want), and a
// tree reduction in workgroup memory sums the 64 partials. A workgroup owns MB rows x 4 columns.
// MB is spliced in by the host; load_w comes from the weights_<dtype>.wgsl snippet.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    y_stride: u32,
    y_col_offset: u32,
    y_row_offset: u32,
    has_bias: u32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const WG: u32 = 64u;
const NB: u32 = 4u;

var<workgroup> red: array<f32, 64u * MB * NB>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let n0 = (wid.x + wid.z * nwg.x) * NB;
    let m0 = wid.y * MB;
    if (n0 >= p.n) {
        return;
    }
    // Out-of-range rows/columns read a valid neighbour and are dropped at the end, so the hot
    // loop has no branches.
    let last_n = p.n - 1u;
    let w0 = min(n0, last_n) * p.k;
    let w1 = min(n0 + 1u, last_n) * p.k;
    let w2 = min(n0 + 2u, last_n) * p.k;
    let w3 = min(n0 + 3u, last_n) * p.k;
    var acc: array<vec4<f32>, MB>;
    for (var k = lid.x; k < p.k; k += WG) {
        let wv = vec4<f32>(load_w(w0 + k), load_w(w1 + k), load_w(w2 + k), load_w(w3 + k));
        for (var i = 0u; i < MB; i++) {
            let row = min(m0 + i, p.m - 1u);
            acc[i] = fma(vec4<f32>(x[row * p.k + k]), wv, acc[i]);
        }
    }
    for (var i = 0u; i < MB; i++) {
        for (var j = 0u; j < NB; j++) {
            red[(i * NB + j) * WG + lid.x] = acc[i][j];
        }
    }
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid.x < stride) {
            for (var v = 0u; v < MB * NB; v++) {
                red[v * WG + lid.x] += red[v * WG + lid.x + stride];
            }
        }
        workgroupBarrier();
    }
    if (lid.x < MB * NB) {
        let m = m0 + lid.x / NB;
        let n = n0 + lid.x % NB;
        if (m < p.m && n < p.n) {
            var v = red[lid.x * WG];
            let col = p.y_col_offset + n;
            if (p.has_bias != 0u) {
                v += bias[col];
            }
            let idx = (p.y_row_offset + m) * p.y_stride + col;
            if (p.accumulate != 0u) {
                v += y[idx];
            }
            y[idx] = v;
        }
    }
}
