// Many-row matmul: one workgroup computes a 64x64 tile of y, each of its 16x16 threads a 4x4
// register block. Prepended: weights_<dtype>.wgsl (load_w) and matmul_common.wgsl (bindings,
// store_output).

const TILE: u32 = 64u;
const KT: u32 = 16u;

var<workgroup> xs: array<array<f32, 64>, 16>;
var<workgroup> ws: array<array<f32, 64>, 16>;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tid = lid.y * 16u + lid.x;
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += KT) {
        for (var i = 0u; i < 4u; i++) {
            let e = tid + i * 256u;
            let row = e / KT;
            let kk = e % KT;
            let kg = k0 + kk;
            var xv = 0.0;
            if (m0 + row < p.m && kg < p.k) {
                xv = x[(m0 + row) * p.k + kg];
            }
            xs[kk][row] = xv;
            var wv = 0.0;
            if (n0 + row < p.n && kg < p.k) {
                wv = load_w((n0 + row) * p.k + kg);
            }
            ws[kk][row] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            var xr: array<f32, 4>;
            var wr: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                xr[i] = xs[kk][lid.y + 16u * i];
                wr[i] = ws[kk][lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(xr[i], wr[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y + 16u * i;
        if (m >= p.m) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid.x + 16u * j;
            if (n >= p.n) {
                continue;
            }
            store_output(m, n, acc[i][j]);
        }
    }
}
