#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use culturelens::gpu::{AdapterSelector, Gpu, PrecisionRequest};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// One device for the whole test binary, in exact mode (the tolerances most tests hold); a
/// missing adapter fails the test with the install hint.
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        let sel: AdapterSelector =
            std::env::var("CULTURELENS_DEVICE").ok().map(|s| s.parse().unwrap()).unwrap_or_default();
        Gpu::open(&sel, PrecisionRequest::Exact).unwrap_or_else(|e| panic!("{e}"))
    })
    .clone()
}

/// The same device in fast mode: on its tensor cores where it has them, else with the 16x16
/// products emulated (same f16 operands, f32 accumulators, kernel and staging), so fast mode's
/// tolerances are checked on every adapter. Says which it is.
pub fn fast_gpu() -> Arc<Gpu> {
    match gpu().with_precision(PrecisionRequest::Fast) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("fast mode emulated (no tensor cores here: {e})");
            gpu().with_emulated_fast_mode()
        }
    }
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn randn(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.gen::<f32>() * 2.0 - 1.0) * scale).collect()
}

/// The repository root, where the binary runs and fixtures are found.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn fixture_dir(case: &str) -> PathBuf {
    let d = root().join("tests/fixtures").join(case);
    assert!(d.is_dir(), "missing fixture {}: the repository's tests/fixtures is incomplete", d.display());
    d
}

/// The bundled mini-CVQA test split, grouped by country (as the PyTorch reference did), the
/// first `limit` rows of each culture.
pub fn mini_cvqa_test(limit: Option<usize>) -> culturelens::pipeline::data::DataOptions {
    culturelens::pipeline::data::DataOptions {
        data: root().join("assets/data/mini-cvqa/test.parquet").display().to_string(),
        split: None,
        group_by: culturelens::eval::grouping::GroupBy::Country,
        lang: culturelens::eval::dataset::Lang::En,
        min_per_group: 1,
        groups: None,
        limit,
        inputs: Default::default(),
        rows: None,
    }
}

/// What a run of the binary came to.
pub struct Outcome {
    pub code: Option<i32>,
    pub stderr: String,
}

/// Runs the culturelens binary from the repository root.
pub fn culturelens(args: &[&str]) -> Outcome {
    let out =
        Command::new(env!("CARGO_BIN_EXE_culturelens")).args(args).current_dir(root()).output().expect("binary runs");
    Outcome { code: out.status.code(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// Runs the binary and expects success.
pub fn ok(args: &[&str]) -> Outcome {
    let o = culturelens(args);
    assert_eq!(o.code, Some(0), "culturelens {args:?} failed:\n{}", o.stderr);
    o
}

/// Runs the binary and expects exit 1 (not a signal, not a panic) with every needle in the
/// message; returns the message.
pub fn fails(args: &[&str], needles: &[&str]) -> String {
    let o = culturelens(args);
    assert_eq!(o.code, Some(1), "expected exit 1 from {args:?}, got {:?} (a signal is None):\n{}", o.code, o.stderr);
    assert!(!o.stderr.contains("panicked"), "panic instead of an error:\n{}", o.stderr);
    for n in needles {
        assert!(o.stderr.contains(n), "error of {args:?} should mention {n:?}; got:\n{}", o.stderr);
    }
    o.stderr
}

pub fn json(p: &Path) -> serde_json::Value {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Max |a-b| / (|b| + atol) style check with a helpful message.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= atol + rtol * w.abs(), "{what}[{i}]: got {g}, want {w}");
    }
}

/// Σ(x−ref)² / Σ(ref−mean(ref))²  (docs/numerics.md).
pub fn nmse<T: Copy + Into<f64>>(got: &[T], want: &[T]) -> f64 {
    assert_eq!(got.len(), want.len());
    let mean = want.iter().map(|&v| v.into()).sum::<f64>() / want.len() as f64;
    let num: f64 = got.iter().zip(want).map(|(&g, &w)| (g.into() - w.into()).powi(2)).sum();
    let den: f64 = want.iter().map(|&w| (w.into() - mean).powi(2)).sum();
    num / den
}

/// golden.safetensors of a fixture case: f32 and i64 tensors by name.
pub struct Golden {
    bytes: Vec<u8>,
    pub dir: std::path::PathBuf,
}

impl Golden {
    pub fn open(case: &str) -> Golden {
        let dir = fixture_dir(case);
        let bytes = std::fs::read(dir.join("golden.safetensors")).expect("golden.safetensors");
        Golden { bytes, dir }
    }

    fn view(&self, name: &str) -> safetensors::tensor::TensorView<'_> {
        let st = safetensors::SafeTensors::deserialize(&self.bytes).expect("valid golden file");
        let v = st.tensor(name).unwrap_or_else(|_| panic!("golden tensor {name} missing"));
        safetensors::tensor::TensorView::new(v.dtype(), v.shape().to_vec(), {
            let d = v.data();
            // SAFETY-free re-borrow: data lives in self.bytes for as long as &self.
            let start = d.as_ptr() as usize - self.bytes.as_ptr() as usize;
            &self.bytes[start..start + d.len()]
        })
        .unwrap()
    }

    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.view(name).shape().to_vec()
    }

    pub fn f32(&self, name: &str) -> Vec<f32> {
        let v = self.view(name);
        assert_eq!(v.dtype(), safetensors::Dtype::F32, "{name} dtype");
        v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }

    pub fn i64(&self, name: &str) -> Vec<i64> {
        let v = self.view(name);
        assert_eq!(v.dtype(), safetensors::Dtype::I64, "{name} dtype");
        v.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
    }

    pub fn ids(&self, name: &str) -> Vec<u32> {
        self.i64(name).into_iter().map(|x| x as u32).collect()
    }
}

pub fn argmax_rows(v: &[f32], width: usize) -> Vec<usize> {
    v.chunks(width).map(|r| r.iter().enumerate().fold(0, |b, (i, &x)| if x > r[b] { i } else { b })).collect()
}

/// docs/numerics.md's fast-mode tolerance: logits NMSE ≤ 1e-3; prints how many positions keep their
/// argmax (near-ties may flip, so that figure is reported, not asserted).
pub fn check_fast(what: &str, got: &[f32], want: &[f32], vocab: usize) {
    let e = nmse(got, want);
    let (a, b) = (argmax_rows(got, vocab), argmax_rows(want, vocab));
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    eprintln!("{what} (fast): logits NMSE {e:.2e}, argmax equal at {same}/{} positions", a.len());
    assert!(e <= 1e-3, "{what} (fast): logits NMSE {e:e} > 1e-3");
}

/// A safetensors file's header JSON and the byte offset where its data starts.
pub fn safetensors_header(bytes: &[u8]) -> (serde_json::Value, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[8..8 + n]).unwrap(), 8 + n)
}

/// Rewrites model.safetensors with `f` applied to its header JSON (data bytes unchanged).
pub fn edit_header(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let (mut header, data) = safetensors_header(&bytes);
    f(&mut header);
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend_from_slice(&bytes[data..]);
    std::fs::write(p, out).unwrap();
}
