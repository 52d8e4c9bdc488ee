// y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * weight + bias   (torch LayerNorm, biased variance).
// One workgroup per row; two-pass (mean, then centred squares) like torch, for accuracy.

struct Params {
    rows: u32,
    width: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

fn row_sum(v: f32, lane: u32) -> f32 {
    partial[lane] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lane < stride) {
            partial[lane] += partial[lane + stride];
        }
        workgroupBarrier();
    }
    let s = partial[0];
    workgroupBarrier();
    return s;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.width;
    var s = 0.0;
    for (var i = lid.x; i < p.width; i += WG) {
        s += x[base + i];
    }
    let mean = row_sum(s, lid.x) / f32(p.width);
    var q = 0.0;
    for (var i = lid.x; i < p.width; i += WG) {
        let d = x[base + i] - mean;
        q = fma(d, d, q);
    }
    let inv = 1.0 / sqrt(row_sum(q, lid.x) / f32(p.width) + p.eps);
    for (var i = lid.x; i < p.width; i += WG) {
        y[base + i] = (x[base + i] - mean) * inv * weight[i] + bias[i];
    }
}
