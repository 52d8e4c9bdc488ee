// f16 weights, two per u32; unpack2x16float needs no SHADER_F16 feature.
@group(0) @binding(2) var<storage, read> w: array<u32>;

fn load_w(i: u32) -> f32 {
    let v = unpack2x16float(w[i >> 1u]);
    return select(v.x, v.y, (i & 1u) == 1u);
}
