//! Model code. File and field names follow the HF modeling files they port
//! (modeling_qwen2.py, modeling_mistral.py), so the two can be read side by side.

pub mod batch;
pub mod causal_lm;
pub mod config;
pub mod config_json;
pub mod decoder;
pub mod generate;
pub mod llava_next;
pub mod qwen2_5_vl;
pub mod stats;
pub mod vision_language;

pub use batch::PackedBatch;
pub use causal_lm::CausalLm;
pub use config::{Architecture, ConfigError, ModelConfig, TextConfig};
pub use decoder::{Decoder, ForwardOptions, ForwardOutput};
pub use stats::{Intervention, InterventionMaps, NeuronEdit, NeuronStats};
pub use vision_language::{ImageBudget, ImageSource, Pixels, VisionLanguageModel};
