//! `culturelens bench` and benches/kernels.rs: kernel and prefill throughput, reported against
//! this device's own measured copy bandwidth and best matmul rate.

mod ablation;
mod random_model;

use std::sync::Arc;
use std::time::Instant;

pub use random_model::{qwen2_5_7b_shape, random_decoder};

use crate::gpu::{by_kernel, Gpu, KernelTotal, Recorder, WeightDType, WeightTensor};
use crate::models::decoder::{ForwardOptions, LogitRows};
use crate::models::{NeuronStats, PackedBatch};
use crate::ops::attention::{attention, AttentionShape};
use crate::ops::matmul::{matmul, MatmulOut};
use crate::ops::swiglu::{swiglu, SwigluSide, TokenSegments};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct BenchOptions {
    /// Tokens per prefill / rows of the matmuls (default: 4096 on a GPU, 16 on a CPU adapter).
    #[arg(long)]
    pub tokens: Option<usize>,
    /// Decoder layers in the 7B-shaped prefill model (default: 28 on a GPU, 1 on a CPU adapter).
    #[arg(long)]
    pub layers: Option<usize>,
    /// Timed repetitions of each measurement (default: 10 on a GPU, 1 on a CPU adapter).
    #[arg(long)]
    pub iters: Option<usize>,
    /// Instead of the kernels: the ablation matrix's passes, one per neuron set against fused,
    /// on a random-weight 28-layer decoder (7B widths on a GPU, scaled down on a CPU adapter).
    #[arg(long)]
    pub ablation: bool,
    /// Tokens one fused ablation pass may hold (with --ablation).
    #[arg(long, default_value_t = crate::eval::score::DEFAULT_FUSED_TOKENS)]
    pub fused_tokens: usize,
}

struct Settings {
    tokens: usize,
    layers: usize,
    iters: usize,
}

impl BenchOptions {
    fn settings(&self, gpu: &Gpu) -> Settings {
        let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
        Settings {
            tokens: self.tokens.unwrap_or(if cpu { 16 } else { 4096 }),
            layers: self.layers.unwrap_or(if cpu { 1 } else { 28 }),
            iters: self.iters.unwrap_or(if cpu { 1 } else { 10 }).max(1),
        }
    }
}

/// One row of the report.
struct Row {
    what: String,
    seconds: f64,
    flops: f64,
    bytes: f64,
    tokens: f64,
}

/// Records `iters` copies of the work, submits once, and returns seconds per copy (after a
/// warm-up run that also compiles pipelines): summed GPU timestamps of its dispatches where the
/// device has them, else wall-clock time.
fn time(gpu: &Arc<Gpu>, iters: usize, mut record: impl FnMut(&mut Recorder)) -> anyhow::Result<f64> {
    let mut warm = Recorder::new(gpu);
    record(&mut warm);
    warm.finish()?;
    let mut rec = Recorder::new(gpu);
    for _ in 0..iters {
        record(&mut rec);
    }
    let timed = gpu.has_timestamps() && rec.dispatches() > 0;
    if timed {
        gpu.profiler.start();
    }
    let start = Instant::now();
    rec.finish()?;
    let wall = start.elapsed().as_secs_f64();
    if timed {
        let gpu_seconds: f64 = gpu.profiler.stop().iter().map(|k| k.seconds).sum();
        return Ok(gpu_seconds / iters as f64);
    }
    Ok(wall / iters as f64)
}

fn random_weight(gpu: &Arc<Gpu>, dtype: WeightDType, rows: usize, cols: usize) -> anyhow::Result<WeightTensor> {
    let bytes: Vec<u8> = (0..rows * cols * dtype.size()).map(|i| ((i * 7919) % 251) as u8 & 0x3f).collect();
    Ok(WeightTensor::upload(gpu, "bench weight", dtype, rows, cols, &bytes)?)
}

fn bench_copy(gpu: &Arc<Gpu>, s: &Settings) -> anyhow::Result<Row> {
    let bytes: u64 = if gpu.info.device_type == wgpu::DeviceType::Cpu { 64 << 20 } else { 1 << 30 };
    let bytes = bytes.min(gpu.limits.max_buffer_size / 2);
    let src = gpu.storage_buffer("copy src", bytes.min(gpu.max_binding_bytes))?;
    let dst = gpu.storage_buffer("copy dst", bytes.min(gpu.max_binding_bytes))?;
    let n = src.size();
    let secs = time(gpu, s.iters, |r| r.copy(&src, 0, &dst, 0, n))?;
    Ok(Row { what: format!("copy {} MiB", n >> 20), seconds: secs, flops: 0.0, bytes: 2.0 * n as f64, tokens: 0.0 })
}

fn bench_matmul(gpu: &Arc<Gpu>, s: &Settings, dtype: WeightDType, m: usize, n: usize, k: usize) -> anyhow::Result<Row> {
    let w = random_weight(gpu, dtype, n, k)?;
    let x = gpu.storage_from("x", &vec![0.01f32; m * k])?;
    let y = gpu.storage_buffer("y", (m * n * 4) as u64)?;
    let secs = time(gpu, s.iters, |r| matmul(r, &x, &w, None, &y, m, MatmulOut::default()))?;
    Ok(Row {
        what: format!("matmul {} {m}x{n}x{k}", dtype.name()),
        seconds: secs,
        flops: 2.0 * (m * n * k) as f64,
        bytes: (m * k * 4 + n * k * dtype.size() + m * n * 4) as f64,
        tokens: m as f64,
    })
}

fn bench_attention(gpu: &Arc<Gpu>, s: &Settings) -> anyhow::Result<Row> {
    let c = qwen2_5_7b_shape(1);
    let seq = s.tokens.min(512);
    let lens: Vec<Vec<u32>> = (0..s.tokens / seq).map(|_| vec![0; seq]).collect();
    let batch = PackedBatch::from_sequences(&lens);
    let t = batch.len();
    let shape = AttentionShape {
        tokens: t,
        heads: c.num_attention_heads,
        kv_heads: c.num_key_value_heads,
        head_dim: c.head_dim,
        max_keys: seq,
    };
    let q = gpu.storage_from("q", &vec![0.01f32; t * c.num_attention_heads * c.head_dim])?;
    let kv = gpu.storage_from("kv", &vec![0.01f32; t * c.num_key_value_heads * c.head_dim])?;
    let ranges = gpu.storage_from("ranges", &batch.kv_ranges(0, None))?;
    let out = gpu.storage_buffer("out", q.size())?;
    let secs = time(gpu, s.iters, |r| attention(r, &q, &kv, &kv, &ranges, &out, shape, 0.088))?;
    let pairs = (lens.len() * seq * (seq + 1) / 2) as f64;
    Ok(Row {
        what: format!("attention causal {}x{seq} tok, 28/4 heads x128", lens.len()),
        seconds: secs,
        flops: 4.0 * pairs * (c.num_attention_heads * c.head_dim) as f64,
        bytes: (2 * q.size() + 2 * kv.size()) as f64,
        tokens: t as f64,
    })
}

fn bench_swiglu(gpu: &Arc<Gpu>, s: &Settings, stats: bool) -> anyhow::Result<Row> {
    let (t, i) = (s.tokens, 18944);
    let gate = gpu.storage_from("gate", &vec![0.5f32; t * i])?;
    let up = gpu.storage_from("up", &vec![1.0f32; t * i])?;
    let groups: Vec<u32> = (0..t).map(|x| (x / 512) as u32).collect();
    let segments = TokenSegments::new(gpu, &groups, None, i, stats)?;
    let iv = gpu.storage_from("interv", &vec![1.0f32; 2 * i])?;
    let acc = NeuronStats::new(gpu, t.div_ceil(512), 1, i)?;
    let secs = time(gpu, s.iters, |r| {
        let side = SwigluSide {
            segments: &segments,
            intervention: &iv,
            acc: if stats { Some(acc.blocks()) } else { None },
            layer: 0,
            layers: 1,
        };
        swiglu(r, &gate, &up, &side, i)
    })?;
    Ok(Row {
        what: format!("fused SwiGLU {t}x{i}, stats {}", if stats { "on" } else { "off" }),
        seconds: secs,
        flops: 0.0,
        bytes: (3 * t * i * 4) as f64,
        tokens: t as f64,
    })
}

/// One prefill's wall time (best of `iters`), resident weight bytes, and GPU time per kernel.
fn bench_prefill(gpu: &Arc<Gpu>, s: &Settings, stats: bool) -> anyhow::Result<(Row, u64, Vec<KernelTotal>)> {
    let c = qwen2_5_7b_shape(s.layers);
    let model = random_decoder(gpu, &c)?;
    let seq = s.tokens.min(512);
    let prompts: Vec<Vec<u32>> =
        (0..(s.tokens / seq).max(1)).map(|p| (0..seq as u32).map(|i| (i * 31 + p as u32) % 1000).collect()).collect();
    let mut batch = PackedBatch::from_sequences(&prompts);
    for p in 0..prompts.len() {
        batch.set_group(p, p as u32);
    }
    let acc = NeuronStats::new(gpu, prompts.len(), c.num_hidden_layers, c.intermediate_size)?;
    let opts = ForwardOptions {
        logits: LogitRows::Rows(batch.last_tokens()),
        stats: if stats { Some(&acc) } else { None },
        ..Default::default()
    };
    let run = || -> anyhow::Result<f64> {
        let mut cache = model.new_cache(batch.len())?;
        let start = Instant::now();
        model.forward(&batch, &mut cache, &opts)?;
        Ok(start.elapsed().as_secs_f64())
    };
    run()?;
    let mut best = f64::MAX;
    for _ in 0..s.iters {
        best = best.min(run()?);
    }
    let breakdown = if gpu.has_timestamps() {
        gpu.profiler.start();
        let ran = run();
        let times = gpu.profiler.stop();
        ran?;
        by_kernel(&times)
    } else {
        Vec::new()
    };
    let per_layer = 2.0
        * (c.hidden_size * (2 * c.num_attention_heads * c.head_dim + 2 * c.num_key_value_heads * c.head_dim)
            + 3 * c.hidden_size * c.intermediate_size) as f64;
    Ok((
        Row {
            what: format!(
                "prefill 7B-shaped, {} layers, {}x{seq} tok, stats {}",
                c.num_hidden_layers,
                prompts.len(),
                if stats { "on" } else { "off" }
            ),
            seconds: best,
            flops: per_layer * c.num_hidden_layers as f64 * batch.len() as f64,
            bytes: model.weight_bytes() as f64,
            tokens: batch.len() as f64,
        },
        model.weight_bytes(),
        breakdown,
    ))
}

/// Runs every measurement and prints the table.
pub fn run(gpu: &Arc<Gpu>, opts: &BenchOptions) -> anyhow::Result<()> {
    if opts.ablation {
        let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
        let tokens = opts.tokens.unwrap_or(if cpu { 128 } else { 4096 });
        return ablation::run(gpu, opts.layers.unwrap_or(28), tokens, opts.fused_tokens);
    }
    let s = opts.settings(gpu);
    println!(
        "adapter: {} ({:?}, {:?}, driver {} {})",
        gpu.info.name, gpu.info.backend, gpu.info.device_type, gpu.info.driver, gpu.info.driver_info
    );
    println!(
        "settings: tokens {}, prefill layers {}, iterations {}, precision {}",
        s.tokens,
        s.layers,
        s.iters,
        gpu.precision.name()
    );
    println!(
        "kernel times: {}; prefill: wall clock",
        if gpu.has_timestamps() { "GPU timestamps (copy: wall clock)" } else { "wall clock" }
    );
    let copy = bench_copy(gpu, &s)?;
    let copy_gbs = copy.bytes / copy.seconds / 1e9;
    let mut kernels = Vec::new();
    if gpu.info.device_type != wgpu::DeviceType::Cpu {
        kernels.push(bench_matmul(gpu, &s, WeightDType::BF16, 8192, 8192, 8192)?);
    }
    for (n, k) in [(18944, 3584), (3584, 18944), (512, 3584)] {
        kernels.push(bench_matmul(gpu, &s, WeightDType::BF16, s.tokens, n, k)?);
    }
    kernels.push(bench_matmul(gpu, &s, WeightDType::F32, s.tokens, 3584, 3584)?);
    let best_flops = kernels.iter().map(|r| r.flops / r.seconds).fold(0.0, f64::max);
    kernels.push(bench_attention(gpu, &s)?);
    kernels.push(bench_swiglu(gpu, &s, false)?);
    kernels.push(bench_swiglu(gpu, &s, true)?);
    println!();
    println!("{:<52} {:>10} {:>10} {:>9} {:>8} {:>8}", "kernel", "ms", "GFLOP/s", "GB/s", "%flops", "%copy");
    for r in std::iter::once(&copy).chain(&kernels) {
        let gflops = r.flops / r.seconds / 1e9;
        let gbs = r.bytes / r.seconds / 1e9;
        println!(
            "{:<52} {:>10.3} {:>10.1} {:>9.1} {:>7.1}% {:>7.1}%",
            r.what,
            r.seconds * 1e3,
            gflops,
            gbs,
            100.0 * r.flops / r.seconds / best_flops,
            100.0 * gbs / copy_gbs
        );
    }
    println!();
    println!("{:<52} {:>10} {:>10} {:>9} {:>8}", "prefill", "ms", "tok/s", "GFLOP/s", "%flops");
    let mut plain = 0.0;
    let mut breakdowns = Vec::new();
    for stats in [false, true] {
        let (r, weights, breakdown) = bench_prefill(gpu, &s, stats)?;
        breakdowns.push((r.what.clone(), breakdown));
        let tps = r.tokens / r.seconds;
        println!(
            "{:<52} {:>10.1} {:>10.1} {:>9.1} {:>7.1}%",
            r.what,
            r.seconds * 1e3,
            tps,
            r.flops / r.seconds / 1e9,
            100.0 * r.flops / r.seconds / best_flops
        );
        if stats {
            println!(
                "statistics cost by wall clock: {:+.1}% of prefill time; resident weights {:.2} GiB",
                100.0 * (r.seconds / plain - 1.0),
                weights as f64 / (1u64 << 30) as f64
            );
        }
        plain = r.seconds;
    }
    if let [(_, off), (_, on)] = &breakdowns[..] {
        if !off.is_empty() && !on.is_empty() {
            let swiglu = |b: &[KernelTotal]| -> f64 {
                b.iter().filter(|k| k.kernel.starts_with("swiglu_stats")).map(|k| k.seconds).sum()
            };
            let total_off: f64 = off.iter().map(|k| k.seconds).sum();
            let extra = swiglu(on) - swiglu(off);
            println!(
                "statistics cost by timestamps: fused SwiGLU {:.3} ms with, {:.3} ms without: {:+.2}% of prefill GPU time",
                swiglu(on) * 1e3,
                swiglu(off) * 1e3,
                100.0 * extra / total_off
            );
        }
    }
    for (what, breakdown) in breakdowns.iter().filter(|(_, b)| !b.is_empty()) {
        let total: f64 = breakdown.iter().map(|k| k.seconds).sum();
        println!();
        println!("{what}: GPU time per kernel (timestamps), {:.1} ms in all", total * 1e3);
        println!("{:<52} {:>10} {:>8} {:>8}", "kernel", "ms", "calls", "share");
        for k in breakdown {
            println!("{:<52} {:>10.3} {:>8} {:>7.1}%", k.kernel, k.seconds * 1e3, k.calls, 100.0 * k.seconds / total);
        }
    }
    Ok(())
}
