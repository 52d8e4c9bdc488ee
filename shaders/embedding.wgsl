// out[t, :] = table[ids[t], :] for the tokens whose id falls in this row-chunk of the table.
// load_w comes from the weights_<dtype>.wgsl snippet prepended to this file.

struct Params {
    tokens: u32,
    hidden: u32,
    row_start: u32,
    rows: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = wid.y + wid.z * nwg.y;
    let d = wid.x * 64u + lid.x;
    if (t >= p.tokens || d >= p.hidden) {
        return;
    }
    let id = ids[t];
    if (id < p.row_start || id >= p.row_start + p.rows) {
        return;
    }
    out[t * p.hidden + d] = load_w((id - p.row_start) * p.hidden + d);
}
