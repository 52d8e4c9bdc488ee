// In-place activations of the vision towers and projectors:
//   kind 0: GELU, x Φ(x) = 0.5 x (1 + erf(x / √2))   (torch.nn.GELU(), approximate='none')
//   kind 1: quick_gelu, x σ(1.702 x)                  (CLIP)
// WGSL has no erf; erfc below is the Chebyshev fit of Numerical Recipes (relative error
// < 1.2e-7 everywhere), accurate enough to keep GELU within f32 rounding of torch.

struct Params {
    count: u32,
    kind: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

fn erfc_nr(v: f32) -> f32 {
    let z = abs(v);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(poly);
    return select(2.0 - r, r, v >= 0.0);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.count) {
        return;
    }
    let v = x[i];
    if (p.kind == 1u) {
        x[i] = v / (1.0 + exp(-1.702 * v));
        return;
    }
    // 0.5 v (1 + erf(v/√2)) = 0.5 v erfc(-v/√2): no cancellation for negative v.
    x[i] = 0.5 * v * erfc_nr(-v * 0.70710678118654752);
}
