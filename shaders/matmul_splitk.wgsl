// Few-row matmul (decode, the LM head on chosen rows) and the CPU-adapter path. The 64 invocations of a workgroup split K: neighbours read neighbouring
// k, so loads are contiguous (what lavapipe's SIMD lanes and a GPU's coalescer both want), and a
// tree reduction in workgroup memory sums the 64 partials. A workgroup owns MB rows x 4 columns.
// Prepended: `const MB`, weights_<dtype>.wgsl (load_w) and matmul_common.wgsl.

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
            store_output(m, n, red[lid.x * WG]);
        }
    }
}
