// Fused SwiGLU with neuron statistics and interventions (DESIGN §6):
//   a = silu(gate); h = (scale * a + shift) * up          (h overwrites gate)
//   for tokens whose group id is not EXCLUDED: count(a > 0), Σa, Σa² per (group, layer, neuron).
// Each thread owns one neuron across every token of the dispatch, so accumulators are updated
// without atomics or races. Sums are Kahan-compensated both within the dispatch and in the
// resident accumulators, which is what keeps them from drifting over 10^8 positions.
// acc layout: [group][layer][neuron] x 5 words: count (u32), sum, sum_comp, sum_sq, sum_sq_comp.

struct Params {
    tokens: u32,
    width: u32,
    layer: u32,
    layers: u32,
    groups: u32,
    collect: u32,
    // First token of this dispatch: long streams are cut into several dispatches because
    // lavapipe silently stops any shader loop after 65535 iterations.
    token_start: u32,
    zero: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read> token_group: array<u32>;
@group(0) @binding(4) var<storage, read> intervention: array<f32>;
@group(0) @binding(5) var<storage, read_write> acc: array<u32>;

const EXCLUDED: u32 = 0xffffffffu;

// Kahan step on (sum, comp): returns the new pair; the true total is sum - comp.
// `t` goes through an XOR with a uniform that is always 0: compilers that reassociate floats
// (Mesa's NIR does) would otherwise fold (t - s) - y to 0 and silently drop the compensation.
fn kahan_add(k: vec2<f32>, x: f32) -> vec2<f32> {
    let y = x - k.y;
    let t = bitcast<f32>(bitcast<u32>(k.x + y) ^ p.zero);
    return vec2<f32>(t, (t - k.x) - y);
}

fn flush(g: u32, j: u32, count: u32, sum: vec2<f32>, sq: vec2<f32>) {
    if (g == EXCLUDED || g >= p.groups) {
        return;
    }
    let base = ((g * p.layers + p.layer) * p.width + j) * 5u;
    acc[base] = acc[base] + count;
    var s = kahan_add(vec2<f32>(bitcast<f32>(acc[base + 1u]), bitcast<f32>(acc[base + 2u])), sum.x);
    s = kahan_add(s, -sum.y);
    acc[base + 1u] = bitcast<u32>(s.x);
    acc[base + 2u] = bitcast<u32>(s.y);
    var q = kahan_add(vec2<f32>(bitcast<f32>(acc[base + 3u]), bitcast<f32>(acc[base + 4u])), sq.x);
    q = kahan_add(q, -sq.y);
    acc[base + 3u] = bitcast<u32>(q.x);
    acc[base + 4u] = bitcast<u32>(q.y);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= p.width) {
        return;
    }
    let iv = (p.layer * p.width + j) * 2u;
    let scale = intervention[iv];
    let shift = intervention[iv + 1u];
    var g_run = EXCLUDED;
    var count = 0u;
    var sum = vec2<f32>(0.0);
    var sq = vec2<f32>(0.0);
    for (var t = p.token_start; t < p.tokens; t++) {
        let i = t * p.width + j;
        let g = gate[i];
        let a = g / (1.0 + exp(-g));
        gate[i] = fma(scale, a, shift) * up[i];
        if (p.collect != 0u) {
            let tg = token_group[t];
            if (tg != g_run) {
                flush(g_run, j, count, sum, sq);
                count = 0u;
                sum = vec2<f32>(0.0);
                sq = vec2<f32>(0.0);
                g_run = tg;
            }
            count += select(0u, 1u, a > 0.0);
            sum = kahan_add(sum, a);
            sq = kahan_add(sq, a * a);
        }
    }
    flush(g_run, j, count, sum, sq);
}
