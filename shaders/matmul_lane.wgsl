// CPU-adapter matmul for short K (lavapipe): each invocation owns a 4 x 4 output block and walks
// K alone, so there is no workgroup memory and no barrier (llvmpipe turns both into per-lane
// gathers and context switches); its SIMD lanes run neighbouring blocks side by side.
// Prepended: weights_<dtype>.wgsl (load_w) and matmul_common.wgsl.

const MB: u32 = 4u;
const NB: u32 = 4u;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let col_blocks = (p.n + NB - 1u) / NB;
    let item = gid.x + gid.y * nwg.x * 64u;
    if (item >= col_blocks * ((p.m + MB - 1u) / MB)) {
        return;
    }
    let n0 = (item % col_blocks) * NB;
    let m0 = (item / col_blocks) * MB;
    // Out-of-range rows/columns read a valid neighbour and are dropped at the end.
    let last_n = p.n - 1u;
    let last_m = p.m - 1u;
    let w0 = min(n0, last_n) * p.k;
    let w1 = min(n0 + 1u, last_n) * p.k;
    let w2 = min(n0 + 2u, last_n) * p.k;
    let w3 = min(n0 + 3u, last_n) * p.k;
    let x0 = min(m0, last_m) * p.k;
    let x1 = min(m0 + 1u, last_m) * p.k;
    let x2 = min(m0 + 2u, last_m) * p.k;
    let x3 = min(m0 + 3u, last_m) * p.k;
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k; k++) {
        let wv = vec4<f32>(load_w(w0 + k), load_w(w1 + k), load_w(w2 + k), load_w(w3 + k));
        a0 = fma(vec4<f32>(x[x0 + k]), wv, a0);
        a1 = fma(vec4<f32>(x[x1 + k]), wv, a1);
        a2 = fma(vec4<f32>(x[x2 + k]), wv, a2);
        a3 = fma(vec4<f32>(x[x3 + k]), wv, a3);
    }
    let acc = array<vec4<f32>, 4>(a0, a1, a2, a3);
    for (var i = 0u; i < MB; i++) {
        for (var j = 0u; j < NB; j++) {
            if (m0 + i < p.m && n0 + j < p.n) {
                store_output(m0 + i, n0 + j, acc[i][j]);
            }
        }
    }
}
