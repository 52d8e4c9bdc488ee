//! The WGSL sources as text: one file per op (`shaders/`), and the weight-dtype snippets that
//! define `load_w`. Everything that assembles or compiles them sits above this module.

use crate::gpu::WeightDType;

pub const MATMUL_COMMON: &str = include_str!("../../shaders/matmul_common.wgsl");
pub const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
pub const MATMUL_SPLITK: &str = include_str!("../../shaders/matmul_splitk.wgsl");
pub const MATMUL_LANE: &str = include_str!("../../shaders/matmul_lane.wgsl");
pub const EMBEDDING: &str = include_str!("../../shaders/embedding.wgsl");
pub const RMSNORM: &str = include_str!("../../shaders/rmsnorm.wgsl");
pub const RMSNORM_LANE: &str = include_str!("../../shaders/rmsnorm_lane.wgsl");
pub const ROPE: &str = include_str!("../../shaders/rope.wgsl");
pub const ATTENTION_COMMON: &str = include_str!("../../shaders/attention_common.wgsl");
pub const ATTENTION: &str = include_str!("../../shaders/attention.wgsl");
pub const ATTENTION_LANE: &str = include_str!("../../shaders/attention_lane.wgsl");
pub const ATTENTION_BLOCK: &str = include_str!("../../shaders/attention_block.wgsl");
pub const SWIGLU_STATS: &str = include_str!("../../shaders/swiglu_stats.wgsl");
pub const SWIGLU_STATS_FOLD: &str = include_str!("../../shaders/swiglu_stats_fold.wgsl");
pub const KAHAN: &str = include_str!("../../shaders/kahan.wgsl");
pub const GATHER_ROWS: &str = include_str!("../../shaders/gather_rows.wgsl");
pub const ACTIVATION: &str = include_str!("../../shaders/activation.wgsl");
pub const LAYERNORM: &str = include_str!("../../shaders/layernorm.wgsl");

pub fn weight_loader(dtype: WeightDType) -> &'static str {
    match dtype {
        WeightDType::BF16 => include_str!("../../shaders/weights_bf16.wgsl"),
        WeightDType::F16 => include_str!("../../shaders/weights_f16.wgsl"),
        WeightDType::F32 => include_str!("../../shaders/weights_f32.wgsl"),
    }
}
