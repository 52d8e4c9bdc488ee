// Many-row matmul (exact mode on GPUs): one workgroup computes a (16·TM)x(16·TM) tile of y, each
// of its 16x16 invocations a TM x TM register block (rows ly + 16i, columns lx + 16j, so reads
// of the staged slabs are broadcasts). The next K slab is fetched into registers while the
// current one is multiplied. Prepended: `const TM: u32`, weights_<dtype>.wgsl (load_w) and
// matmul_common.wgsl (bindings, store_output).

const TILE: u32 = 16u * TM;
const KT: u32 = 16u;
// Slab elements each invocation stages per operand.
const PER: u32 = TILE * KT / 256u;

var<workgroup> xs: array<array<f32, TILE>, KT>;
var<workgroup> ws: array<array<f32, TILE>, KT>;
var<private> xr_next: array<f32, PER>;
var<private> wr_next: array<f32, PER>;

fn fetch(k0: u32, m0: u32, n0: u32, tid: u32) {
    for (var i = 0u; i < PER; i++) {
        let e = tid + i * 256u;
        let row = e / KT;
        let kg = k0 + e % KT;
        var xv = 0.0;
        if (m0 + row < p.m && kg < p.k) {
            xv = x[(m0 + row) * p.k + kg];
        }
        xr_next[i] = xv;
        var wv = 0.0;
        if (n0 + row < p.n && kg < p.k) {
            wv = load_w((n0 + row) * p.k + kg);
        }
        wr_next[i] = wv;
    }
}

fn deposit(tid: u32) {
    for (var i = 0u; i < PER; i++) {
        let e = tid + i * 256u;
        xs[e % KT][e / KT] = xr_next[i];
        ws[e % KT][e / KT] = wr_next[i];
    }
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tid = lid.y * 16u + lid.x;
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    var acc: array<array<f32, TM>, TM>;
    fetch(0u, m0, n0, tid);
    for (var k0 = 0u; k0 < p.k; k0 += KT) {
        deposit(tid);
        workgroupBarrier();
        if (k0 + KT < p.k) {
            fetch(k0 + KT, m0, n0, tid);
        }
        for (var kk = 0u; kk < KT; kk++) {
            var xr: array<f32, TM>;
            var wr: array<f32, TM>;
            for (var i = 0u; i < TM; i++) {
                xr[i] = xs[kk][lid.y + 16u * i];
                wr[i] = ws[kk][lid.x + 16u * i];
            }
            for (var i = 0u; i < TM; i++) {
                for (var j = 0u; j < TM; j++) {
                    acc[i][j] = fma(xr[i], wr[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < TM; i++) {
        let m = m0 + lid.y + 16u * i;
        if (m >= p.m) {
            continue;
        }
        for (var j = 0u; j < TM; j++) {
            let n = n0 + lid.x + 16u * j;
            if (n >= p.n) {
                continue;
            }
            store_output(m, n, acc[i][j]);
        }
    }
}
