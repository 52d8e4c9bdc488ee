// Prefill attention for GPUs: one workgroup per (head, block of QB consecutive queries). The
// block's keys are staged KB at a time through workgroup memory and shared by its queries, so a
// K/V row is read from memory once per block rather than once per query. SPLIT invocations per
// query split the head dimensions (d = sub + SPLIT * i); each keeps its slices of q and of the
// output in registers, with an online (flash-style) softmax: no T x T matrix exists. Queries of
// one block may belong to different packed prompts: keys outside a query's own range are masked.
// Prepended: `const HD: u32` (the head dimension) and attention_common.wgsl.

const QB: u32 = 16u;
const KB: u32 = 16u;
const SPLIT: u32 = 4u;
const DPT: u32 = (HD + SPLIT - 1u) / SPLIT;
const NONE: f32 = -3.0e38;

var<workgroup> k_s: array<f32, KB * HD>;
var<workgroup> v_s: array<f32, KB * HD>;
// Partial dot products: [query][key][sub].
var<workgroup> part: array<f32, QB * KB * SPLIT>;
var<workgroup> range_s: array<u32, 2u * QB>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let h = wid.x;
    let block = wid.y + wid.z * nwg.y;
    let qi = lane / SPLIT;
    let sub = lane % SPLIT;
    let t = block * QB + qi;
    let in_batch = t < p.tokens;
    let kvh = h / (p.heads / p.kv_heads);
    var start = 0u;
    var end = 0u;
    if (in_batch) {
        start = kv_range[2u * t];
        end = kv_range[2u * t + 1u];
    }
    if (sub == 0u) {
        range_s[2u * qi] = start;
        range_s[2u * qi + 1u] = end;
    }
    workgroupBarrier();
    // The block's keys: the union of its queries' ranges (the same in every invocation).
    var lo = 0xffffffffu;
    var hi = 0u;
    for (var i = 0u; i < QB; i++) {
        if (range_s[2u * i] < range_s[2u * i + 1u]) {
            lo = min(lo, range_s[2u * i]);
            hi = max(hi, range_s[2u * i + 1u]);
        }
    }
    var qr: array<f32, DPT>;
    var acc: array<f32, DPT>;
    for (var i = 0u; i < DPT; i++) {
        let d = sub + SPLIT * i;
        if (in_batch && d < HD) {
            qr[i] = q[t * p.q_stride + h * HD + d];
        }
    }
    var m = NONE;
    var l = 0.0;
    for (var j0 = lo; j0 < hi; j0 += KB) {
        for (var e = lane; e < KB * HD; e += 64u) {
            let j = j0 + e / HD;
            let src = j * p.kv_stride + kvh * HD + e % HD;
            var kv = 0.0;
            var vv = 0.0;
            if (j < hi) {
                kv = k_cache[src];
                vv = v_cache[src];
            }
            k_s[e] = kv;
            v_s[e] = vv;
        }
        workgroupBarrier();
        for (var jj = 0u; jj < KB; jj++) {
            var dot = 0.0;
            for (var i = 0u; i < DPT; i++) {
                let d = sub + SPLIT * i;
                if (d < HD) {
                    dot = fma(qr[i], k_s[jj * HD + d], dot);
                }
            }
            part[(qi * KB + jj) * SPLIT + sub] = dot;
        }
        workgroupBarrier();
        // Every invocation of a query sums the partials in the same order: identical scores.
        var s: array<f32, KB>;
        var tile_max = NONE;
        for (var jj = 0u; jj < KB; jj++) {
            let j = j0 + jj;
            let b = (qi * KB + jj) * SPLIT;
            let score = (part[b] + part[b + 1u] + part[b + 2u] + part[b + 3u]) * p.scale;
            let ok = j >= start && j < end;
            s[jj] = select(NONE, score, ok);
            if (ok) {
                tile_max = max(tile_max, score);
            }
        }
        let m_new = max(m, tile_max);
        if (m_new > NONE) {
            let correction = exp(m - m_new);
            for (var i = 0u; i < DPT; i++) {
                acc[i] *= correction;
            }
            var tile_sum = 0.0;
            for (var jj = 0u; jj < KB; jj++) {
                let j = j0 + jj;
                if (j >= start && j < end) {
                    let pj = exp(s[jj] - m_new);
                    tile_sum += pj;
                    for (var i = 0u; i < DPT; i++) {
                        let d = sub + SPLIT * i;
                        if (d < HD) {
                            acc[i] = fma(pj, v_s[jj * HD + d], acc[i]);
                        }
                    }
                }
            }
            l = l * correction + tile_sum;
            m = m_new;
        }
        workgroupBarrier();
    }
    if (in_batch) {
        for (var i = 0u; i < DPT; i++) {
            let d = sub + SPLIT * i;
            if (d < HD) {
                out[t * p.q_stride + h * HD + d] = acc[i] / l;
            }
        }
    }
}
