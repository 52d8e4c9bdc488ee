// dst[i, :] (+)= src[rows[i], :]: picks the positions whose logits are wanted, reorders patches
// into windows and back, packs image features; with `accumulate`, adds a table row per row
// (position embeddings).

struct Params {
    count: u32,
    width: u32,
    accumulate: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> rows: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = wid.y + wid.z * nwg.y;
    let d = wid.x * 64u + lid.x;
    if (i >= p.count || d >= p.width) {
        return;
    }
    var v = src[rows[i] * p.width + d];
    if (p.accumulate != 0u) {
        v += dst[i * p.width + d];
    }
    dst[i * p.width + d] = v;
}
