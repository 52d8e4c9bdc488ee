//! LlavaNextForConditionalGeneration (modeling_llava_next.py): a CLIP vision tower over anyres
//! crops, a GELU projector, features packed into the crop grid, unpadded and closed by
//! image_newline per row, and a Mistral or Qwen2 language model.

pub mod clip;
pub mod config;
pub mod model;

pub use config::{ClipVisionConfig, LlavaNextConfig};
pub use model::{image_token_runs, LlavaImage, LlavaNextForConditionalGeneration};
