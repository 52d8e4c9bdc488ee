//! config.json of a supported checkpoint: the architecture, the decoder's hyper-parameters and,
//! for vision-language models, the family's own config (parsed by that family's module).

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use super::config_json::{read_json, ConfigError, Fields, TextFamily};

/// The architectures this engine runs, by their HF class name.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Qwen2ForCausalLM,
    MistralForCausalLM,
    Qwen2_5_VLForConditionalGeneration,
    LlavaNextForConditionalGeneration,
}

impl Architecture {
    pub const SUPPORTED: [Architecture; 4] = [
        Architecture::Qwen2ForCausalLM,
        Architecture::MistralForCausalLM,
        Architecture::Qwen2_5_VLForConditionalGeneration,
        Architecture::LlavaNextForConditionalGeneration,
    ];

    pub fn hf_name(self) -> &'static str {
        match self {
            Architecture::Qwen2ForCausalLM => "Qwen2ForCausalLM",
            Architecture::MistralForCausalLM => "MistralForCausalLM",
            Architecture::Qwen2_5_VLForConditionalGeneration => "Qwen2_5_VLForConditionalGeneration",
            Architecture::LlavaNextForConditionalGeneration => "LlavaNextForConditionalGeneration",
        }
    }
}

/// Hyper-parameters of the Qwen2 / Mistral decoder (Qwen2Config / MistralConfig).
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f64,
    pub tie_word_embeddings: bool,
    /// q/k/v projections carry a bias (Qwen2: always; Mistral: never).
    pub qkv_bias: bool,
    /// Mistral's sliding-window attention, when the config enables it.
    pub sliding_window: Option<usize>,
    pub max_position_embeddings: usize,
    /// Qwen2.5-VL's M-RoPE: how many of the head_dim/2 frequencies follow t, h and w.
    pub mrope_section: Option<Vec<usize>>,
}

/// config.json of a supported checkpoint.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub path: PathBuf,
    pub architecture: Architecture,
    pub text: TextConfig,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// The vision tower and image-token ids of a vision-language checkpoint.
    pub vision: Option<crate::models::qwen2_5_vl::VisionConfig>,
    /// The CLIP tower, projector and anyres grid of a LLaVA-NeXT checkpoint.
    pub llava_next: Option<crate::models::llava_next::LlavaNextConfig>,
}

impl TextConfig {
    pub fn parse(f: &Fields<'_>, family: TextFamily) -> Result<TextConfig, ConfigError> {
        let hidden_size = f.usize("hidden_size")?;
        let num_attention_heads = f.usize("num_attention_heads")?;
        let num_key_value_heads = f.opt_usize("num_key_value_heads")?.unwrap_or(num_attention_heads);
        let head_dim = f.opt_usize("head_dim")?.unwrap_or(hidden_size / num_attention_heads);
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(
                f.err("num_key_value_heads", &format!("must divide num_attention_heads ({num_attention_heads})"))
            );
        }
        if head_dim == 0 || head_dim % 2 != 0 || head_dim > crate::ops::attention::MAX_HEAD_DIM {
            return Err(f.err(
                "head_dim",
                &format!("{head_dim} must be even and at most {}", crate::ops::attention::MAX_HEAD_DIM),
            ));
        }
        // transformers 5 moved rope_theta into rope_parameters; hub files still have it on top.
        let rope_theta = match f.f64("rope_theta")? {
            Some(t) => t,
            None => {
                f.get("rope_parameters").and_then(|r| r.get("rope_theta")).and_then(|v| v.as_f64()).unwrap_or(10000.0)
            }
        };
        let sliding_window = match family {
            TextFamily::Mistral => f.opt_usize("sliding_window")?,
            TextFamily::Qwen2 if f.bool("use_sliding_window", false)? => {
                return Err(f.err("use_sliding_window", "true is not supported (no released Qwen2 checkpoint uses it)"));
            }
            TextFamily::Qwen2 => None,
        };
        // Qwen2.5-VL: rope_scaling {"type": "mrope", "mrope_section": [16, 24, 24]} (hub files),
        // rope_parameters in transformers 5.
        let mrope_section = ["rope_scaling", "rope_parameters"]
            .iter()
            .filter_map(|k| f.get(k))
            .find_map(|r| r.get("mrope_section"))
            .map(|s| {
                s.as_array()
                    .and_then(|a| a.iter().map(|v| v.as_u64().map(|n| n as usize)).collect::<Option<Vec<_>>>())
                    .filter(|v| v.len() == 3 && v.iter().sum::<usize>() == head_dim / 2)
                    .ok_or_else(|| {
                        f.err("mrope_section", &format!("must be 3 integers summing to head_dim/2 = {}", head_dim / 2))
                    })
            })
            .transpose()?;
        let hidden_act = f.get("hidden_act").and_then(|v| v.as_str()).unwrap_or("silu");
        if hidden_act != "silu" {
            return Err(f.err("hidden_act", &format!("is {hidden_act:?}; only \"silu\" (SwiGLU) is supported")));
        }
        Ok(TextConfig {
            hidden_size,
            intermediate_size: f.usize("intermediate_size")?,
            num_hidden_layers: f.usize("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            vocab_size: f.usize("vocab_size")?,
            rms_norm_eps: f.f64("rms_norm_eps")?.unwrap_or(1e-6) as f32,
            rope_theta,
            tie_word_embeddings: f.bool("tie_word_embeddings", false)?,
            qkv_bias: family == TextFamily::Qwen2,
            sliding_window,
            max_position_embeddings: f.opt_usize("max_position_embeddings")?.unwrap_or(32768),
            mrope_section,
        })
    }
}

impl ModelConfig {
    /// The token an image's features replace, for vision-language checkpoints.
    pub fn image_token_id(&self) -> Option<u32> {
        match (&self.vision, &self.llava_next) {
            (Some(v), _) => Some(v.image_token_id),
            (None, Some(l)) => Some(l.image_token_index),
            (None, None) => None,
        }
    }

    pub fn load(model_dir: &Path) -> Result<ModelConfig, ConfigError> {
        let path = model_dir.join("config.json");
        let json = read_json(&path)?;
        let f = Fields { path: &path, json: &json };
        let arch_name = json
            .get("architectures")
            .and_then(|a| a.as_array())
            .and_then(|a| a.first())
            .and_then(|v| v.as_str())
            .or_else(|| json.get("model_type").and_then(|v| v.as_str()))
            .ok_or_else(|| f.err("architectures", "is missing"))?;
        let architecture = Architecture::SUPPORTED.into_iter().find(|a| a.hf_name() == arch_name).ok_or_else(|| {
            ConfigError::UnknownArchitecture {
                path: path.clone(),
                arch: arch_name.to_string(),
                supported: Architecture::SUPPORTED.map(|a| a.hf_name()).join(", "),
            }
        })?;
        // transformers 5 nests the language model's fields under text_config; hub files of
        // Qwen2.5-VL keep them at the top level. LLaVA-NeXT's text_config names its own family
        // and, as HF writes it, omits the values equal to that config class's defaults.
        let nested = json.get("text_config").filter(|t| t.is_object());
        let family = match architecture {
            Architecture::MistralForCausalLM => TextFamily::Mistral,
            Architecture::Qwen2ForCausalLM | Architecture::Qwen2_5_VLForConditionalGeneration => TextFamily::Qwen2,
            Architecture::LlavaNextForConditionalGeneration => {
                let t = nested.and_then(|t| t.get("model_type")).and_then(|v| v.as_str()).unwrap_or("llama");
                TextFamily::from_model_type(t).ok_or_else(|| {
                    f.err("text_config.model_type", &format!("{t:?} is not supported (mistral, qwen2)"))
                })?
            }
        };
        let text = match architecture {
            Architecture::LlavaNextForConditionalGeneration => {
                let filled = crate::models::llava_next::config::with_class_defaults(
                    nested.unwrap_or(&Value::Null),
                    crate::models::llava_next::config::text_defaults(family),
                );
                TextConfig::parse(&Fields { path: &path, json: &filled }, family)?
            }
            _ => TextConfig::parse(&Fields { path: &path, json: nested.unwrap_or(&json) }, family)?,
        };
        let llava_next = match architecture {
            Architecture::LlavaNextForConditionalGeneration => {
                Some(crate::models::llava_next::LlavaNextConfig::parse(&f)?)
            }
            _ => None,
        };
        let vision = match architecture {
            Architecture::Qwen2_5_VLForConditionalGeneration => {
                if text.mrope_section.is_none() {
                    return Err(f.err("rope_scaling.mrope_section", "is missing (Qwen2.5-VL needs M-RoPE)"));
                }
                Some(crate::models::qwen2_5_vl::VisionConfig::parse(&f)?)
            }
            _ => None,
        };
        let mut eos_token_ids = f.ids("eos_token_id");
        if let Ok(gen) = read_json(&model_dir.join("generation_config.json")) {
            let g = Fields { path: &path, json: &gen };
            for id in g.ids("eos_token_id") {
                if !eos_token_ids.contains(&id) {
                    eos_token_ids.push(id);
                }
            }
        }
        if let Some(t) = nested {
            for id in (Fields { path: &path, json: t }).ids("eos_token_id") {
                if !eos_token_ids.contains(&id) {
                    eos_token_ids.push(id);
                }
            }
        }
        Ok(ModelConfig {
            bos_token_id: f.ids("bos_token_id").first().copied(),
            eos_token_ids,
            path,
            architecture,
            text,
            vision,
            llava_next,
        })
    }
}
