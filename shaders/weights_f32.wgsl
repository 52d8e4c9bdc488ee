@group(0) @binding(2) var<storage, read> w: array<f32>;

fn load_w(i: u32) -> f32 {
    return w[i];
}
