// CPU-adapter matmul for many rows (lavapipe): each invocation owns an 8 x 8 output block and
// walks K alone, so there is no workgroup memory and no barrier (llvmpipe turns both into
// per-lane gathers and context switches). llvmpipe runs invocations as SIMD lanes, so every load
// whose address differs per lane is a gather: a bigger block does more FMAs per gather (64 per
// 16 loads). The block is spelled out in registers; a private array would be indexed per lane.
// Prepended: weights_<dtype>.wgsl (load_w) and matmul_common.wgsl.

const MB: u32 = 8u;
const NB: u32 = 8u;

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
    let w0 = min(n0 + 0u, last_n) * p.k;
    let w1 = min(n0 + 1u, last_n) * p.k;
    let w2 = min(n0 + 2u, last_n) * p.k;
    let w3 = min(n0 + 3u, last_n) * p.k;
    let w4 = min(n0 + 4u, last_n) * p.k;
    let w5 = min(n0 + 5u, last_n) * p.k;
    let w6 = min(n0 + 6u, last_n) * p.k;
    let w7 = min(n0 + 7u, last_n) * p.k;
    let x0 = min(m0 + 0u, last_m) * p.k;
    let x1 = min(m0 + 1u, last_m) * p.k;
    let x2 = min(m0 + 2u, last_m) * p.k;
    let x3 = min(m0 + 3u, last_m) * p.k;
    let x4 = min(m0 + 4u, last_m) * p.k;
    let x5 = min(m0 + 5u, last_m) * p.k;
    let x6 = min(m0 + 6u, last_m) * p.k;
    let x7 = min(m0 + 7u, last_m) * p.k;
    var a0l = vec4<f32>(0.0);
    var a0h = vec4<f32>(0.0);
    var a1l = vec4<f32>(0.0);
    var a1h = vec4<f32>(0.0);
    var a2l = vec4<f32>(0.0);
    var a2h = vec4<f32>(0.0);
    var a3l = vec4<f32>(0.0);
    var a3h = vec4<f32>(0.0);
    var a4l = vec4<f32>(0.0);
    var a4h = vec4<f32>(0.0);
    var a5l = vec4<f32>(0.0);
    var a5h = vec4<f32>(0.0);
    var a6l = vec4<f32>(0.0);
    var a6h = vec4<f32>(0.0);
    var a7l = vec4<f32>(0.0);
    var a7h = vec4<f32>(0.0);
    for (var k = 0u; k < p.k; k++) {
        let wl = vec4<f32>(load_w(w0 + k), load_w(w1 + k), load_w(w2 + k), load_w(w3 + k));
        let wh = vec4<f32>(load_w(w4 + k), load_w(w5 + k), load_w(w6 + k), load_w(w7 + k));
        let xv0 = vec4<f32>(x[x0 + k]);
        a0l = fma(xv0, wl, a0l);
        a0h = fma(xv0, wh, a0h);
        let xv1 = vec4<f32>(x[x1 + k]);
        a1l = fma(xv1, wl, a1l);
        a1h = fma(xv1, wh, a1h);
        let xv2 = vec4<f32>(x[x2 + k]);
        a2l = fma(xv2, wl, a2l);
        a2h = fma(xv2, wh, a2h);
        let xv3 = vec4<f32>(x[x3 + k]);
        a3l = fma(xv3, wl, a3l);
        a3h = fma(xv3, wh, a3h);
        let xv4 = vec4<f32>(x[x4 + k]);
        a4l = fma(xv4, wl, a4l);
        a4h = fma(xv4, wh, a4h);
        let xv5 = vec4<f32>(x[x5 + k]);
        a5l = fma(xv5, wl, a5l);
        a5h = fma(xv5, wh, a5h);
        let xv6 = vec4<f32>(x[x6 + k]);
        a6l = fma(xv6, wl, a6l);
        a6h = fma(xv6, wh, a6h);
        let xv7 = vec4<f32>(x[x7 + k]);
        a7l = fma(xv7, wl, a7l);
        a7h = fma(xv7, wh, a7h);
    }
    store_row(m0 + 0u, n0, a0l, a0h);
    store_row(m0 + 1u, n0, a1l, a1h);
    store_row(m0 + 2u, n0, a2l, a2h);
    store_row(m0 + 3u, n0, a3l, a3h);
    store_row(m0 + 4u, n0, a4l, a4h);
    store_row(m0 + 5u, n0, a5l, a5h);
    store_row(m0 + 6u, n0, a6l, a6h);
    store_row(m0 + 7u, n0, a7l, a7h);
}

fn store_row(m: u32, n0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (n0 + j < p.n) {
            store_output(m, n0 + j, lo[j]);
        }
        if (n0 + 4u + j < p.n) {
            store_output(m, n0 + 4u + j, hi[j]);
        }
    }
}
