// Fused SwiGLU with neuron statistics and interventions (DESIGN §6):
//   a = silu(gate); h = (scale * a + shift) * up          (h overwrites gate)
//   with (scale, shift) from the intervention map of the token's sequence (several maps let one
//   packed batch run every ablation variant, one per sequence).
//   for tokens whose group id is not EXCLUDED: count(a > 0), Σa, Σa² per (group, layer, neuron).
// The token stream comes cut into segments of at most 64 tokens, each inside one group run
// (src/ops/swiglu.rs). One workgroup per (64 neurons, segment): every token is processed in
// parallel, and each invocation writes its neuron's Kahan-compensated partial sums for its
// segment; swiglu_stats_fold.wgsl then adds the partials into the accumulators in segment order.
// Prepended: kahan.wgsl.

struct Params {
    width: u32,
    layer: u32,
    collect: u32,
    // First segment of this dispatch (partials are indexed from it).
    seg_first: u32,
    zero: u32,
    // Layers per intervention map.
    layers: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
// [segment] x 4: first token, end token, group id, intervention map.
@group(0) @binding(3) var<storage, read> segments: array<u32>;
// [map][layer][neuron] x 2: scale, shift.
@group(0) @binding(4) var<storage, read> intervention: array<f32>;
// [segment in dispatch][neuron] x 5: count, sum, sum_comp, sum_sq, sum_sq_comp.
@group(0) @binding(5) var<storage, read_write> partials: array<u32>;

const EXCLUDED: u32 = 0xffffffffu;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let j = gid.x;
    if (j >= p.width) {
        return;
    }
    let seg = p.seg_first + wid.y;
    let start = segments[4u * seg];
    let end = segments[4u * seg + 1u];
    let counted = p.collect != 0u && segments[4u * seg + 2u] != EXCLUDED;
    let map = segments[4u * seg + 3u];
    let iv = ((map * p.layers + p.layer) * p.width + j) * 2u;
    let scale = intervention[iv];
    let shift = intervention[iv + 1u];
    var count = 0u;
    var sum = vec2<f32>(0.0);
    var sq = vec2<f32>(0.0);
    for (var t = start; t < end; t++) {
        let i = t * p.width + j;
        let g = gate[i];
        let a = g / (1.0 + exp(-g));
        gate[i] = fma(scale, a, shift) * up[i];
        if (counted) {
            count += select(0u, 1u, a > 0.0);
            sum = kahan_add(sum, a, p.zero);
            sq = kahan_add(sq, a * a, p.zero);
        }
    }
    if (p.collect != 0u) {
        let o = (wid.y * p.width + j) * 5u;
        partials[o] = count;
        partials[o + 1u] = bitcast<u32>(sum.x);
        partials[o + 2u] = bitcast<u32>(sum.y);
        partials[o + 3u] = bitcast<u32>(sq.x);
        partials[o + 4u] = bitcast<u32>(sq.y);
    }
}
