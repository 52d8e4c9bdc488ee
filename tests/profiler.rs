//! Per-kernel timestamps: each dispatch of a submit is logged under its kernel's name.
mod common;

use common::{gpu, randn, rng};
use culturelens::gpu::{by_kernel, Recorder, WeightDType, WeightTensor};
use culturelens::ops::matmul::{matmul_with, MatmulKernel, MatmulOut};

#[test]
fn timestamps_name_and_time_every_dispatch() {
    let g = gpu();
    assert!(g.has_timestamps(), "{} offers no TIMESTAMP_QUERY; the profiler needs it", g.info.name);
    let (m, n, k) = (33, 47, 29);
    let mut r = rng(3);
    let w: Vec<f32> = randn(&mut r, n * k, 1.0);
    let w = WeightTensor::upload(&g, "w", WeightDType::F32, n, k, bytemuck::cast_slice(&w)).unwrap();
    let x = g.storage_from("x", &randn(&mut r, m * k, 1.0)).unwrap();
    let y = g.storage_buffer("y", (m * n * 4) as u64).unwrap();
    let run = |timed: bool| {
        let mut rec = Recorder::new(&g);
        for kernel in [MatmulKernel::Tiled { block: 4 }, MatmulKernel::Lane, MatmulKernel::Lane] {
            matmul_with(&mut rec, kernel, &x, &w, None, &y, m, MatmulOut::default());
        }
        if timed {
            g.profiler.start();
        }
        rec.finish().unwrap();
        g.profiler.stop()
    };
    assert!(run(false).is_empty(), "nothing is logged while the profiler is off");
    let times = run(true);
    assert_eq!(times.len(), 3);
    assert!(times.iter().all(|t| t.seconds > 0.0 && t.seconds < 10.0), "{times:?}");
    let totals = by_kernel(&times);
    let calls = |name: &str| totals.iter().find(|t| t.kernel == name).map(|t| t.calls);
    assert_eq!(calls("matmul_lane[f32]"), Some(2), "{totals:?}");
    assert_eq!(calls("matmul[f32-4x4]"), Some(1), "{totals:?}");
}
