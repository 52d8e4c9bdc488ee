#![allow(dead_code)]
use std::sync::{Arc, OnceLock};

use culturelens::gpu::{AdapterSelector, Gpu};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// One device for the whole test binary; a missing adapter fails the test with the install hint.
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let sel: AdapterSelector = std::env::var("CULTURELENS_DEVICE").ok().map(|s| s.parse().unwrap()).unwrap_or_default();
        Gpu::new(&sel).unwrap_or_else(|e| panic!("{e}"))
    })
    .clone()
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn randn(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.gen::<f32>() * 2.0 - 1.0) * scale).collect()
}

pub fn fixture_dir(case: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(case);
    assert!(d.is_dir(), "missing fixture {} (copy it from the shared fixtures)", d.display());
    d
}

/// Max |a-b| / (|b| + atol) style check with a helpful message.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= atol + rtol * w.abs(), "{what}[{i}]: got {g}, want {w}");
    }
}

/// Σ(x−ref)² / Σ(ref−mean(ref))²  (DESIGN §4).
pub fn nmse(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let mean = want.iter().map(|&v| v as f64).sum::<f64>() / want.len() as f64;
    let num: f64 = got.iter().zip(want).map(|(g, w)| (*g as f64 - *w as f64).powi(2)).sum();
    let den: f64 = want.iter().map(|&w| (w as f64 - mean).powi(2)).sum();
    num / den
}
