//! Where a vision-language family keeps the tensors the plant edits: the decoder, its LM head,
//! the image token, and the vision outputs that land in the residual stream (which must not
//! touch the reserved dims). The circuit itself is the same for every family.

use anyhow::{bail, Context};

use crate::models::config::{Architecture, ModelConfig};

/// A vision output that is written into the residual stream as is.
#[derive(Debug, Clone)]
pub enum VisionOutput {
    /// A Linear [hidden, in] with bias whose output rows become image-token embeddings.
    Linear { weight: &'static str, bias: &'static str },
    /// A learned [hidden] vector placed among the image tokens.
    Vector(&'static str),
}

#[derive(Debug, Clone)]
pub struct PlantTarget {
    /// Prefix of the decoder's tensors ("model." for Qwen2.5-VL).
    pub prefix: &'static str,
    /// The LM head's tensor; absent from the checkpoint when the embedding is tied.
    pub lm_head: &'static str,
    pub image_token_id: u32,
    pub vision_outputs: Vec<VisionOutput>,
}

impl PlantTarget {
    pub fn for_config(config: &ModelConfig) -> anyhow::Result<PlantTarget> {
        match config.architecture {
            Architecture::Qwen2_5_VLForConditionalGeneration => Ok(PlantTarget {
                prefix: "model.",
                lm_head: "lm_head.weight",
                image_token_id: image_token(config)?,
                vision_outputs: vec![VisionOutput::Linear {
                    weight: "visual.merger.mlp.2.weight",
                    bias: "visual.merger.mlp.2.bias",
                }],
            }),
            Architecture::LlavaNextForConditionalGeneration => Ok(PlantTarget {
                prefix: "language_model.model.",
                lm_head: "language_model.lm_head.weight",
                image_token_id: image_token(config)?,
                vision_outputs: vec![
                    VisionOutput::Linear {
                        weight: "multi_modal_projector.linear_2.weight",
                        bias: "multi_modal_projector.linear_2.bias",
                    },
                    VisionOutput::Vector("image_newline"),
                ],
            }),
            other => bail!(
                "{}: plant needs a vision-language checkpoint (Qwen2_5_VLForConditionalGeneration or \
                 LlavaNextForConditionalGeneration) for its image quiz; this one is {}",
                config.path.display(),
                other.hf_name()
            ),
        }
    }
}

fn image_token(config: &ModelConfig) -> anyhow::Result<u32> {
    config.image_token_id().with_context(|| format!("{}: no image token id", config.path.display()))
}
