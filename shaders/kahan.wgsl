// Kahan step on (sum, comp): returns the new pair; the true total is sum - comp.
// `t` goes through an XOR with `zero`, a uniform that is always 0: compilers that reassociate
// floats (Mesa's NIR does) would otherwise fold (t - s) - y to 0 and silently drop the
// compensation.
fn kahan_add(k: vec2<f32>, x: f32, zero: u32) -> vec2<f32> {
    let y = x - k.y;
    let t = bitcast<f32>(bitcast<u32>(k.x + y) ^ zero);
    return vec2<f32>(t, (t - k.x) - y);
}
