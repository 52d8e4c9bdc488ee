// Shared by the matmul kernels: y[m, n] (+)= sum_k x[m, k] * w[n, k] + bias[n] (HF Linear: w is
// [out, in]). w may be one row-chunk of a split weight: n is local to the chunk and
// y_col_offset places it; y_row_offset places row 0 (a KV-cache slot for K/V projections).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    y_stride: u32,
    y_col_offset: u32,
    y_row_offset: u32,
    has_bias: u32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// The epilogue: bias, then the residual add when accumulating.
fn store_output(m: u32, n: u32, acc: f32) {
    var v = acc;
    let col = p.y_col_offset + n;
    if (p.has_bias != 0u) {
        v += bias[col];
    }
    let idx = (p.y_row_offset + m) * p.y_stride + col;
    if (p.accumulate != 0u) {
        v += y[idx];
    }
    y[idx] = v;
}
