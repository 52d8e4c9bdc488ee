//! Qwen2_5_VLForConditionalGeneration (modeling_qwen2_5_vl.py): the Qwen2 decoder with
//! M-RoPE, fed by a ViT with window attention, 2D rotary embeddings and a patch merger.

mod config;
pub mod model;
pub mod positions;
pub mod rope_index;
pub mod vision;

pub use config::VisionConfig;
pub use model::{ImageInput, Qwen2_5_VLForConditionalGeneration, VlBatch, VlPrompt};
pub use positions::PositionIds;
pub use rope_index::{get_rope_index, window_index};
pub use vision::VisionTransformer;
