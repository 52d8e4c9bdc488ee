//! WGSL sources, assembled by plain concatenation: a weight-dtype snippet (defining `load_w`)
//! goes in front of the kernels that read weights.

use crate::gpu::{Gpu, ShaderKey, WeightDType};

use super::matmul_coop::{self, CoopOps, CoopTile};
pub use super::wgsl::*;

/// Every shader variant the engine can build, as (key, source): the naga validation test walks it.
pub fn all_variants() -> Vec<(ShaderKey, String)> {
    let mut v = Vec::new();
    for dt in [WeightDType::BF16, WeightDType::F16, WeightDType::F32] {
        for block in [4, 8] {
            v.push((tiled_key(dt, block), matmul_tiled_source(dt, block)));
        }
        v.push((ShaderKey::new("matmul_lane", dt.name()), matmul_lane_source(dt)));
        v.push((ShaderKey::new("embedding", dt.name()), format!("{}\n{}", weight_loader(dt), EMBEDDING)));
        for subgroup in [32, 64] {
            let tile = CoopTile::for_subgroup(subgroup);
            v.push((coop_key(dt, &tile, CoopOps::Hardware), matmul_coop::source(dt, &tile, CoopOps::Hardware)));
        }
        let emulated = CoopTile::EMULATED;
        v.push((coop_key(dt, &emulated, CoopOps::Emulated), matmul_coop::source(dt, &emulated, CoopOps::Emulated)));
        for mb in [1, 4] {
            v.push((ShaderKey::new("matmul_splitk", format!("{}-mb{mb}", dt.name())), matmul_splitk_source(dt, mb)));
        }
    }
    for (name, src) in [
        ("rmsnorm", RMSNORM),
        ("rmsnorm_lane", RMSNORM_LANE),
        ("rope", ROPE),
        ("gather_rows", GATHER_ROWS),
        ("activation", ACTIVATION),
        ("layernorm", LAYERNORM),
    ] {
        v.push((ShaderKey::new(name, ""), src.to_string()));
    }
    for (name, src) in [("swiglu_stats", SWIGLU_STATS), ("swiglu_stats_fold", SWIGLU_STATS_FOLD)] {
        v.push((ShaderKey::new(name, ""), format!("{KAHAN}\n{src}")));
    }
    for (name, src) in [("attention", ATTENTION), ("attention_lane", ATTENTION_LANE)] {
        v.push((ShaderKey::new(name, ""), attention_source(src)));
    }
    for hd in [64, 80, 128, 256] {
        v.push((ShaderKey::new("attention_block", format!("hd{hd}")), attention_block_source(hd)));
    }
    v
}

fn attention_block_source(head_dim: usize) -> String {
    format!("const HD: u32 = {head_dim}u;\n{ATTENTION_COMMON}\n{ATTENTION_BLOCK}")
}

/// The block attention kernel, built per head dimension (it sizes the staged K/V tiles).
pub fn attention_block_pipeline(gpu: &Gpu, head_dim: usize) -> wgpu::ComputePipeline {
    let key = ShaderKey::new("attention_block", format!("hd{head_dim}"));
    gpu.pipelines.get(&gpu.device, &key, || attention_block_source(head_dim))
}

fn attention_source(kernel: &str) -> String {
    format!("{ATTENTION_COMMON}\n{kernel}")
}

/// One of the attention kernels, with the shared Params and bindings in front.
pub fn attention_pipeline(gpu: &Gpu, name: &'static str, kernel: &'static str) -> wgpu::ComputePipeline {
    gpu.pipelines.get(&gpu.device, &ShaderKey::new(name, ""), || attention_source(kernel))
}

/// One of the fused SwiGLU's two kernels, with the Kahan step in front.
pub fn swiglu_pipeline(gpu: &Gpu, name: &'static str, kernel: &'static str) -> wgpu::ComputePipeline {
    gpu.pipelines.get(&gpu.device, &ShaderKey::new(name, ""), || format!("{KAHAN}\n{kernel}"))
}

pub fn pipeline(gpu: &Gpu, name: &'static str, src: &'static str) -> wgpu::ComputePipeline {
    gpu.pipelines.get(&gpu.device, &ShaderKey::new(name, ""), || src.to_string())
}

pub fn weight_pipeline(gpu: &Gpu, name: &'static str, src: &'static str, dtype: WeightDType) -> wgpu::ComputePipeline {
    gpu.pipelines.get(&gpu.device, &ShaderKey::new(name, dtype.name()), || format!("{}\n{}", weight_loader(dtype), src))
}

fn matmul_tiled_source(dtype: WeightDType, block: u32) -> String {
    format!("const TM: u32 = {block}u;\n{}\n{}\n{}", weight_loader(dtype), MATMUL_COMMON, MATMUL)
}

fn tiled_key(dtype: WeightDType, block: u32) -> ShaderKey {
    ShaderKey::new("matmul", format!("{}-{block}x{block}", dtype.name()))
}

fn matmul_lane_source(dtype: WeightDType) -> String {
    format!("{}\n{}\n{}", weight_loader(dtype), MATMUL_COMMON, MATMUL_LANE)
}

pub fn matmul_lane_pipeline(gpu: &Gpu, dtype: WeightDType) -> wgpu::ComputePipeline {
    gpu.pipelines.get(&gpu.device, &ShaderKey::new("matmul_lane", dtype.name()), || matmul_lane_source(dtype))
}

fn matmul_splitk_source(dtype: WeightDType, rows_per_group: u32) -> String {
    format!("const MB: u32 = {rows_per_group}u;\n{}\n{}\n{}", weight_loader(dtype), MATMUL_COMMON, MATMUL_SPLITK)
}

pub fn matmul_tiled_pipeline(gpu: &Gpu, dtype: WeightDType, block: u32) -> wgpu::ComputePipeline {
    gpu.pipelines.get(&gpu.device, &tiled_key(dtype, block), || matmul_tiled_source(dtype, block))
}

pub fn matmul_splitk_pipeline(gpu: &Gpu, dtype: WeightDType, rows_per_group: u32) -> wgpu::ComputePipeline {
    let key = ShaderKey::new("matmul_splitk", format!("{}-mb{rows_per_group}", dtype.name()));
    gpu.pipelines.get(&gpu.device, &key, || matmul_splitk_source(dtype, rows_per_group))
}

fn coop_key(dtype: WeightDType, tile: &CoopTile, ops: CoopOps) -> ShaderKey {
    let name = match ops {
        CoopOps::Hardware => "matmul_coop",
        CoopOps::Emulated => "matmul_coop_emulated",
    };
    ShaderKey::new(name, format!("{}-{}", dtype.name(), tile.key()))
}

pub fn matmul_coop_pipeline(gpu: &Gpu, dtype: WeightDType, tile: &CoopTile, ops: CoopOps) -> wgpu::ComputePipeline {
    gpu.pipelines.get(&gpu.device, &coop_key(dtype, tile, ops), || matmul_coop::source(dtype, tile, ops))
}
