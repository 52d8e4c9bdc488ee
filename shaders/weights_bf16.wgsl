// bf16 weights, two per u32 (element 2i in the low half). Widening is a shift: bf16 is the top
// half of an f32.
@group(0) @binding(2) var<storage, read> w: array<u32>;

fn load_w(i: u32) -> f32 {
    let word = w[i >> 1u];
    return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
}
