//! The model a pipeline step runs: weights, tokenizer, image processor and option-letter ids,
//! loaded once, with the one scoring entry point every step uses.

use std::path::PathBuf;
use std::sync::Arc;

use crate::eval::mc::{option_token_ids, PositionRule};
use crate::eval::score::{prepare_all, score_prepared, Prepared, ScoreOptions, Scored};
use crate::eval::McExample;
use crate::gpu::Gpu;
use crate::models::config::{Architecture, ModelConfig};
use crate::models::qwen2_5_vl::Qwen2_5_VLForConditionalGeneration;
use crate::models::NeuronStats;
use crate::text::TextProcessor;
use crate::vision::qwen2_vl::Qwen2VlImageProcessorConfig;
use crate::weights::resolve_model_dir;

use super::data::model_fingerprint;

pub struct CultureModel {
    /// As the user named it.
    pub name: String,
    pub dir: PathBuf,
    pub fingerprint: String,
    pub vl: Qwen2_5_VLForConditionalGeneration,
    pub text: TextProcessor,
    pub image_processor: Qwen2VlImageProcessorConfig,
    /// Token ids of "A", "B", … for the options.
    pub option_ids: Vec<u32>,
}

impl CultureModel {
    pub fn load(gpu: &Arc<Gpu>, model: &str, n_options: usize) -> anyhow::Result<CultureModel> {
        let dir = resolve_model_dir(model)?;
        let config = ModelConfig::load(&dir)?;
        if config.architecture != Architecture::Qwen2_5_VLForConditionalGeneration {
            anyhow::bail!(
                "{}: the neuron pipeline runs Qwen2_5_VLForConditionalGeneration models; {} runs with \
                 `culturelens run` only for now",
                config.path.display(),
                config.architecture.hf_name()
            );
        }
        let fingerprint = model_fingerprint(&dir)?;
        let vl = Qwen2_5_VLForConditionalGeneration::load(gpu, &dir)?;
        let text = TextProcessor::load(&dir)?;
        let image_processor = Qwen2VlImageProcessorConfig::load(&dir)?;
        let option_ids = option_token_ids(&text, n_options)?;
        Ok(CultureModel { name: model.to_string(), dir, fingerprint, vl, text, image_processor, option_ids })
    }

    pub fn layers(&self) -> usize {
        self.vl.config.text.num_hidden_layers
    }

    /// LM neurons per layer (the MLP's intermediate size).
    pub fn width(&self) -> usize {
        self.vl.config.text.intermediate_size
    }

    pub fn architecture(&self) -> &'static str {
        self.vl.config.architecture.hf_name()
    }

    /// Option-letter logits of each example, accumulating statistics into `stats` when given.
    pub fn score(
        &self,
        examples: &[(usize, McExample)],
        stats: Option<&NeuronStats>,
        rule: PositionRule,
        max_batch_tokens: usize,
        progress: impl FnMut(usize, usize),
    ) -> anyhow::Result<Scored> {
        self.score_prepared(&self.prepare(examples)?, stats, rule, max_batch_tokens, progress)
    }

    /// Prompt ids and pixels of every example, for scoring them more than once.
    pub fn prepare(&self, examples: &[(usize, McExample)]) -> anyhow::Result<Vec<Prepared>> {
        prepare_all(&self.vl, &self.text, &self.image_processor, examples)
    }

    pub fn score_prepared(
        &self,
        prepared: &[Prepared],
        stats: Option<&NeuronStats>,
        rule: PositionRule,
        max_batch_tokens: usize,
        progress: impl FnMut(usize, usize),
    ) -> anyhow::Result<Scored> {
        let opts = ScoreOptions { stats, rule, max_batch_tokens };
        score_prepared(&self.vl, prepared, &self.option_ids, &opts, progress)
    }
}

/// Options per row: CVQA has 4; a data set with more uses its largest count.
pub fn options_per_row(examples: &[(usize, McExample)]) -> usize {
    examples.iter().map(|(_, e)| e.options.len()).max().unwrap_or(4)
}
