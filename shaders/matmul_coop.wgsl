// Fast-mode matmul (DESIGN §4): y[m, n] (+)= x[m, :] · w[n, :] on cooperative matrices, f16
// operands and f32 accumulators. x (f32) and w (bf16, f16 or f32, as resident) are converted to
// f16 while they are staged through workgroup memory, so no second copy of the weights exists.
// Staging is double-buffered: the next K slab is fetched into registers before the current one is
// multiplied, and written to the other buffer after, so one barrier per slab suffices.
//
// Prepended, in order: enable directives, weights_<dtype>.wgsl (load_w), matmul_common.wgsl
// (bindings, store_output), then the generated part (src/ops/matmul_coop.rs): the tile constants
// SUBGROUP, SG_M, SG_N, AM, AN, and for the emulation its emu_mma/emu_store. The generated
// blocks spliced into main (accumulators, products, epilogue) use the coop_mat16x16 builtins
// (coopLoadT for A, coopLoad for B, coopMultiplyAdd, coopStoreT for C), or the emulation, which
// lets adapters without cooperative matrices test everything else here.

const BM: u32 = SG_M * AM * 16u;
const BN: u32 = SG_N * AN * 16u;
const BK: u32 = 32u;
// Row stride of the staged slabs, in f16: 8 of padding keep rows 16-byte aligned (cooperative
// loads need it) while shifting banks between rows.
const LDS: u32 = BK + 8u;
const THREADS: u32 = SG_M * SG_N * SUBGROUP;
const A_PER: u32 = BM * BK / THREADS;
const B_PER: u32 = BN * BK / THREADS;

var<workgroup> a_s: array<f16, 2u * BM * LDS>;
var<workgroup> b_s: array<f16, 2u * BN * LDS>;
// One 16x16 f32 tile per subgroup, where accumulators land for the epilogue.
var<workgroup> c_s: array<f32, SG_M * SG_N * 256u>;

var<private> ra: array<f32, A_PER>;
var<private> rb: array<f32, B_PER>;

// f16 tops out at 65504; saturate rather than turn a large activation into infinity.
fn to_f16(v: f32) -> f16 {
    return f16(clamp(v, -65504.0, 65504.0));
}

// Global -> registers: the K slab at k0 of the x rows and w rows this workgroup covers.
// Consecutive invocations read consecutive k of one row.
fn fetch(k0: u32, m0: u32, n0: u32, tid: u32) {
    for (var i = 0u; i < A_PER; i++) {
        let e = tid + i * THREADS;
        let row = m0 + e / BK;
        let kk = k0 + e % BK;
        var v = 0.0;
        if (row < p.m && kk < p.k) {
            v = x[row * p.k + kk];
        }
        ra[i] = v;
    }
    for (var i = 0u; i < B_PER; i++) {
        let e = tid + i * THREADS;
        let row = n0 + e / BK;
        let kk = k0 + e % BK;
        var v = 0.0;
        if (row < p.n && kk < p.k) {
            v = load_w(row * p.k + kk);
        }
        rb[i] = v;
    }
}

// Registers -> staging buffer `buf`, as f16: a_s rows are x rows (row-major A), b_s rows are
// w rows, i.e. columns of B = wᵀ (column-major B).
fn deposit(buf: u32, tid: u32) {
    for (var i = 0u; i < A_PER; i++) {
        let e = tid + i * THREADS;
        a_s[buf * BM * LDS + (e / BK) * LDS + e % BK] = to_f16(ra[i]);
    }
    for (var i = 0u; i < B_PER; i++) {
        let e = tid + i * THREADS;
        b_s[buf * BN * LDS + (e / BK) * LDS + e % BK] = to_f16(rb[i]);
    }
}

// One subgroup's 16x16 result tile from c_s to y, through the shared epilogue.
fn write_tile(row0: u32, col0: u32, sg: u32, lane: u32) {
    for (var e = lane; e < 256u; e += SUBGROUP) {
        let r = row0 + e / 16u;
        let c = col0 + e % 16u;
        if (r < p.m && c < p.n) {
            store_output(r, c, c_s[sg * 256u + e]);
        }
    }
}

@compute @workgroup_size(THREADS, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32 $SUBGROUP_ARGS) {
    $SUBGROUP_IDS
    let m0 = wid.y * BM;
    let n0 = wid.x * BN;
    // This subgroup's block of AM x AN tiles inside the workgroup's BM x BN.
    let a_row = (sg / SG_N) * AM * 16u;
    let b_row = (sg % SG_N) * AN * 16u;
    $ACC_DECL
    let slabs = (p.k + BK - 1u) / BK;
    fetch(0u, m0, n0, tid);
    deposit(0u, tid);
    workgroupBarrier();
    for (var t = 0u; t < slabs; t++) {
        let cur = t % 2u;
        let more = t + 1u < slabs;
        if (more) {
            fetch((t + 1u) * BK, m0, n0, tid);
        }
        for (var ks = 0u; ks < BK; ks += 16u) {
            let a_base = cur * BM * LDS + a_row * LDS + ks;
            let b_base = cur * BN * LDS + b_row * LDS + ks;
            $MMA_STEP
        }
        if (more) {
            deposit(1u - cur, tid);
        }
        workgroupBarrier();
    }
    $EPILOGUE
}
