// Second half of the fused SwiGLU's statistics: each invocation owns one neuron and adds the
// partial sums of this dispatch's segments, in order, into the (group, layer, neuron)
// accumulators. One owner per neuron means no races and no atomics; the fixed order means the
// same bits every run. Sums stay Kahan-compensated in the resident accumulators, which is what
// keeps them from drifting over 10^8 positions.
// acc layout: [group][layer][neuron] x 5 words: count (u32), sum, sum_comp, sum_sq, sum_sq_comp,
// for the block of groups [group_first, group_first + groups); other segments are skipped.
// Prepended: kahan.wgsl.

struct Params {
    width: u32,
    layer: u32,
    layers: u32,
    groups: u32,
    seg_first: u32,
    seg_count: u32,
    zero: u32,
    group_first: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> segments: array<u32>;
@group(0) @binding(2) var<storage, read> partials: array<u32>;
@group(0) @binding(3) var<storage, read_write> acc: array<u32>;

fn add_pair(base: u32, sum: f32, comp: f32) {
    var s = kahan_add(vec2<f32>(bitcast<f32>(acc[base]), bitcast<f32>(acc[base + 1u])), sum, p.zero);
    s = kahan_add(s, -comp, p.zero);
    acc[base] = bitcast<u32>(s.x);
    acc[base + 1u] = bitcast<u32>(s.y);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= p.width) {
        return;
    }
    for (var s = 0u; s < p.seg_count; s++) {
        let sg = segments[4u * (p.seg_first + s) + 2u];
        // EXCLUDED (0xffffffff) and other blocks' groups fall outside; the subtraction wraps.
        let g = sg - p.group_first;
        if (sg < p.group_first || g >= p.groups) {
            continue;
        }
        let o = (s * p.width + j) * 5u;
        let base = ((g * p.layers + p.layer) * p.width + j) * 5u;
        acc[base] = acc[base] + partials[o];
        add_pair(base + 1u, bitcast<f32>(partials[o + 1u]), bitcast<f32>(partials[o + 2u]));
        add_pair(base + 3u, bitcast<f32>(partials[o + 3u]), bitcast<f32>(partials[o + 4u]));
    }
}
