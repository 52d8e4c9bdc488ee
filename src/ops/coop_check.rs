//! The per-device proof that fast mode is safe to use: its tensor-core kernel against the CPU
//! reference on a small odd-sized product, run once when a device opens.

use std::sync::Arc;

use crate::gpu::{Gpu, Recorder, WeightDType, WeightTensor};

use super::matmul::{matmul_ref, matmul_with, MatmulKernel, MatmulOut};
use super::matmul_coop::{CoopOps, CoopTile};

/// Runs the fast kernel once on `gpu` (odd sizes, fixed pseudo-random data, bf16 weights) and
/// compares it with the CPU reference on the same f16-rounded operands. Errors: the tile does
/// not fit the device, the device rejects the shader, or a result is off.
pub fn self_check(gpu: &Arc<Gpu>, tile: CoopTile, ops: CoopOps) -> Result<(), String> {
    let l = &gpu.limits;
    tile.check(l.max_compute_workgroup_storage_size, l.max_compute_invocations_per_workgroup)?;
    let (m, n, k) = (37, 2 * tile.cols() as usize + 5, 83);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let x: Vec<f32> = (0..m * k).map(|_| next()).collect();
    let w: Vec<half::bf16> = (0..n * k).map(|_| half::bf16::from_f32(next())).collect();
    let round = |v: f32| half::f16::from_f32(v).to_f32();
    let want = matmul_ref(
        &x.iter().map(|&v| round(v)).collect::<Vec<_>>(),
        &w.iter().map(|v| round(v.to_f32())).collect::<Vec<_>>(),
        None,
        m,
        n,
        k,
    );
    let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let run = || -> Result<Vec<f32>, String> {
        let e = |e: crate::gpu::GpuError| e.to_string();
        let wt =
            WeightTensor::upload(gpu, "self-check w", WeightDType::BF16, n, k, bytemuck::cast_slice(&w)).map_err(e)?;
        let xb = gpu.storage_from("self-check x", &x).map_err(e)?;
        let yb = gpu.storage_buffer("self-check y", (m * n * 4) as u64).map_err(e)?;
        let mut rec = Recorder::new(gpu);
        matmul_with(&mut rec, MatmulKernel::Coop { tile, ops }, &xb, &wt, None, &yb, m, MatmulOut::default());
        rec.finish().map_err(e)?;
        gpu.read(&yb, 0, m * n).map_err(e)
    };
    let got = run();
    if let Some(err) = pollster::block_on(scope.pop()) {
        return Err(format!("the device rejected the kernel: {err}"));
    }
    let got = got?;
    let worst = got.iter().zip(&want).map(|(g, r)| (g - r).abs() / (1.0 + r.abs())).fold(0f32, f32::max);
    if worst.is_nan() || worst > 1e-3 {
        return Err(format!("{m}x{n}x{k} product off by up to {worst:e} (relative)"));
    }
    Ok(())
}
