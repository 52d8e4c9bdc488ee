use serde_json::{json, Value};

use crate::models::config_json::{ConfigError, Fields, TextFamily};
use crate::ops::activation::Activation;

/// CLIPVisionConfig of the vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
    pub layer_norm_eps: f32,
    pub hidden_act: Activation,
}

impl ClipVisionConfig {
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Positions of one crop: the CLS token plus every patch.
    pub fn positions(&self) -> usize {
        self.patches_per_side() * self.patches_per_side() + 1
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// LlavaNextConfig (vision side): tower, feature selection, projector and anyres grid.
#[derive(Debug, Clone, PartialEq)]
pub struct LlavaNextConfig {
    pub vision: ClipVisionConfig,
    pub image_token_index: u32,
    pub image_grid_pinpoints: Vec<[usize; 2]>,
    /// Index into the tower's hidden states (0 = embeddings after pre_layrnorm), negative from
    /// the end, as HF's vision_feature_layer.
    pub vision_feature_layer: i64,
    pub projector_hidden_act: Activation,
}

impl LlavaNextConfig {
    /// How many encoder layers must run for the selected hidden state.
    pub fn layers_needed(&self) -> usize {
        let n = self.vision.num_hidden_layers as i64;
        (if self.vision_feature_layer < 0 { n + 1 + self.vision_feature_layer } else { self.vision_feature_layer })
            as usize
    }
}

/// HF serialises only values that differ from the config class's defaults, so nested configs of
/// real checkpoints omit fields; these are the class defaults of transformers' config classes.
pub fn with_class_defaults(cfg: &Value, defaults: Value) -> Value {
    let mut out = defaults;
    if let (Some(o), Some(c)) = (out.as_object_mut(), cfg.as_object()) {
        for (k, v) in c {
            o.insert(k.clone(), v.clone());
        }
    }
    out
}

pub fn text_defaults(family: TextFamily) -> Value {
    match family {
        TextFamily::Mistral => json!({
            "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_act": "silu",
            "max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "sliding_window": 4096, "tie_word_embeddings": false
        }),
        TextFamily::Qwen2 => json!({
            "vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 32, "hidden_act": "silu",
            "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "tie_word_embeddings": false, "use_sliding_window": false
        }),
    }
}

fn clip_defaults() -> Value {
    json!({
        "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
        "num_channels": 3, "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5
    })
}

impl LlavaNextConfig {
    pub(crate) fn parse(top: &Fields<'_>) -> Result<LlavaNextConfig, ConfigError> {
        let raw = top.get("vision_config").ok_or_else(|| top.err("vision_config", "is missing"))?;
        let vjson = with_class_defaults(raw, clip_defaults());
        let v = Fields { path: top.path, json: &vjson };
        let act = |f: &Fields<'_>, key: &str, default: &str| {
            let name = f.get(key).and_then(|x| x.as_str()).unwrap_or(default).to_string();
            Activation::from_hf(&name)
                .ok_or_else(|| f.err(key, &format!("{name:?} is not supported (gelu, quick_gelu)")))
        };
        let vision = ClipVisionConfig {
            hidden_size: v.usize("hidden_size")?,
            intermediate_size: v.usize("intermediate_size")?,
            num_hidden_layers: v.usize("num_hidden_layers")?,
            num_attention_heads: v.usize("num_attention_heads")?,
            image_size: v.usize("image_size")?,
            patch_size: v.usize("patch_size")?,
            num_channels: v.usize("num_channels")?,
            layer_norm_eps: v.f64("layer_norm_eps")?.unwrap_or(1e-5) as f32,
            hidden_act: act(&v, "hidden_act", "quick_gelu")?,
        };
        if !vision.image_size.is_multiple_of(vision.patch_size)
            || !vision.hidden_size.is_multiple_of(vision.num_attention_heads)
        {
            return Err(v.err(
                "vision_config",
                "image_size must be a multiple of patch_size and hidden_size of num_attention_heads",
            ));
        }
        let pinpoints: Vec<[usize; 2]> = top
            .get("image_grid_pinpoints")
            .and_then(|p| p.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_array())
                    .filter_map(|r| Some([r.first()?.as_u64()? as usize, r.get(1)?.as_u64()? as usize]))
                    .collect()
            })
            .unwrap_or_default();
        if pinpoints.is_empty() {
            return Err(top.err("image_grid_pinpoints", "is missing or empty"));
        }
        let layer = top.get("vision_feature_layer").and_then(|x| x.as_i64()).unwrap_or(-2);
        let n = vision.num_hidden_layers as i64;
        if !(-(n + 1)..=n).contains(&layer) {
            return Err(
                top.err("vision_feature_layer", &format!("{layer} is outside the tower's {} hidden states", n + 1))
            );
        }
        // "default" drops the CLS position; "full" (keep it) is used by no LLaVA-NeXT checkpoint
        // and does not fit anyres packing, so it is refused rather than half supported.
        let strategy = top.get("vision_feature_select_strategy").and_then(|x| x.as_str()).unwrap_or("default");
        if strategy != "default" {
            return Err(
                top.err("vision_feature_select_strategy", &format!("{strategy:?} is not supported (\"default\")"))
            );
        }
        Ok(LlavaNextConfig {
            vision,
            image_token_index: [top.ids("image_token_index"), top.ids("image_token_id")]
                .concat()
                .first()
                .copied()
                .ok_or_else(|| top.err("image_token_index", "is missing"))?,
            image_grid_pinpoints: pinpoints,
            vision_feature_layer: layer,
            projector_hidden_act: act(top, "projector_hidden_act", "gelu")?,
        })
    }
}
