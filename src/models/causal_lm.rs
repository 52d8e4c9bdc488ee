use std::path::Path;
use std::sync::Arc;

use super::config::{Architecture, ModelConfig};
use super::decoder::Decoder;
use crate::gpu::Gpu;
use crate::weights::WeightStore;

/// A text-only checkpoint (Qwen2ForCausalLM / MistralForCausalLM) ready to run.
pub struct CausalLm {
    pub config: ModelConfig,
    pub model: Decoder,
}

impl CausalLm {
    /// Reads config.json and the safetensors of `dir`, checking every tensor against the config.
    pub fn load(gpu: &Arc<Gpu>, dir: &Path) -> anyhow::Result<CausalLm> {
        let config = ModelConfig::load(dir)?;
        let store = WeightStore::open(dir)?;
        let model = match config.architecture {
            Architecture::Qwen2ForCausalLM | Architecture::MistralForCausalLM => {
                Decoder::load(gpu, &store, &config.text, "model.", "lm_head.weight")?
            }
            Architecture::Qwen2_5_VLForConditionalGeneration => {
                Decoder::load(gpu, &store, &config.text, "model.", "lm_head.weight")?
            }
            Architecture::LlavaNextForConditionalGeneration => {
                Decoder::load(gpu, &store, &config.text, "language_model.model.", "language_model.lm_head.weight")?
            }
        };
        Ok(CausalLm { config, model })
    }
}
