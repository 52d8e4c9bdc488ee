// The same RMSNorm as rmsnorm.wgsl for CPU adapters (lavapipe): one invocation per row, its sum
// of squares in sequence, no workgroup memory and no barriers. A 256-lane workgroup per row
// with a barrier tree cost llvmpipe about 18 µs per 64-wide row (each barrier switches every
// lane's context); this walks the row once in a register.
// Adjacent invocations take adjacent rows: the same offset within each row, one stride apart.

struct Params {
    rows: u32,
    width: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 64u;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.width;
    var s = 0.0;
    for (var i = 0u; i < p.width; i++) {
        let v = x[base + i];
        s = fma(v, v, s);
    }
    let inv = 1.0 / sqrt(s / f32(p.width) + p.eps);
    for (var i = 0u; i < p.width; i++) {
        y[base + i] = weight[i] * (x[base + i] * inv);
    }
}
