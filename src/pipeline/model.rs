//! The model a pipeline step runs: weights, tokenizer, image processor and option-letter ids,
//! loaded once, with the one scoring entry point every step uses, whatever the family.

use std::path::PathBuf;
use std::sync::Arc;

use crate::eval::mc::{check_image_slot, option_token_ids, PositionRule};
use crate::eval::prompt::PromptFormat;
use crate::eval::score::{
    batch_ranges, image_placeholder, prepare_all, score_prepared, Prepared, ScoreOptions, Scored,
};
use crate::eval::McExample;
use crate::gpu::Gpu;
use crate::models::config::ModelConfig;
use crate::models::vision_language::{ImageProcessor, VISION_LANGUAGE_CLASSES};
use crate::models::{ImageBudget, NeuronStats, VisionLanguageModel};
use crate::text::TextProcessor;
use crate::weights::resolve_model_dir;

use super::data::model_fingerprint;

/// How rows become model inputs, beyond the checkpoint's own settings: recorded with the
/// statistics, since a different choice is a different run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputOptions {
    pub budget: ImageBudget,
    pub prompt: PromptFormat,
}

pub struct CultureModel {
    /// As the user named it.
    pub name: String,
    pub dir: PathBuf,
    pub fingerprint: String,
    pub vlm: VisionLanguageModel,
    pub text: TextProcessor,
    /// Token ids of "A", "B", … for the options.
    pub option_ids: Vec<u32>,
    pub prompt: PromptFormat,
}

impl CultureModel {
    /// Checks everything that can be checked without the weights (architecture, tokenizer, chat
    /// template and its image slot, option letters, image processor) before uploading them.
    pub fn load(gpu: &Arc<Gpu>, model: &str, n_options: usize) -> anyhow::Result<CultureModel> {
        Self::load_with(gpu, model, n_options, &InputOptions::default())
    }

    /// `load` with the user's image budget and prompt format.
    pub fn load_with(
        gpu: &Arc<Gpu>,
        model: &str,
        n_options: usize,
        inputs: &InputOptions,
    ) -> anyhow::Result<CultureModel> {
        let dir = resolve_model_dir(model)?;
        let config = ModelConfig::load(&dir)?;
        let image_token = config.image_token_id().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the neuron pipeline runs vision-language models ({VISION_LANGUAGE_CLASSES}); {} is text-only",
                config.path.display(),
                config.architecture.hf_name()
            )
        })?;
        let processor = ImageProcessor::load(&config, &dir)?.with_budget(inputs.budget)?;
        let text = TextProcessor::load(&dir)?;
        check_image_slot(&text, &image_placeholder(image_token, &text)?)?;
        let option_ids = option_token_ids(&text, n_options)?;
        let fingerprint = model_fingerprint(&dir)?;
        let vlm = VisionLanguageModel::load_with(gpu, &dir, processor)?;
        Ok(CultureModel {
            name: model.to_string(),
            dir,
            fingerprint,
            vlm,
            text,
            option_ids,
            prompt: inputs.prompt.clone(),
        })
    }

    pub fn layers(&self) -> usize {
        self.vlm.config().text.num_hidden_layers
    }

    /// LM neurons per layer (the MLP's intermediate size).
    pub fn width(&self) -> usize {
        self.vlm.config().text.intermediate_size
    }

    pub fn architecture(&self) -> &'static str {
        self.vlm.config().architecture.hf_name()
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

    /// Checks, before any work, that the KV cache can hold the largest batch the packer will
    /// build: the longest prompt alone, or up to `max_batch_tokens` of `rows` prompts of at most
    /// `longest` tokens.
    pub fn check_batch_capacity(&self, longest: usize, rows: usize, max_batch_tokens: usize) -> anyhow::Result<()> {
        let batch = max_batch_tokens.min(longest.saturating_mul(rows));
        self.vlm.decoder().check_cache_capacity(longest.max(batch))
    }

    /// Prompt ids and pixels of every example, for scoring them more than once.
    pub fn prepare(&self, examples: &[(usize, McExample)]) -> anyhow::Result<Vec<Prepared>> {
        prepare_all(&self.vlm, &self.text, &self.prompt, examples)
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
        score_prepared(&self.vlm, prepared, &self.option_ids, &opts, progress)
    }
}

impl CultureModel {
    /// Scores prepared examples batch by batch (the packing of `score_prepared`) with every
    /// sequence accumulating into its own statistics slot of `slots` ([batch rows] groups at
    /// least); after each batch, `fold(rows, scored, words)` gets the batch's rows, its scores
    /// (positions per slot) and the raw accumulator words of its slots ([rows, layers, width,
    /// ACC_WORDS]), before the next batch clears them.
    pub fn score_per_example(
        &self,
        prepared: &[Prepared],
        slots: &NeuronStats,
        rule: PositionRule,
        max_batch_tokens: usize,
        mut fold: impl FnMut(std::ops::Range<usize>, Scored, &[u32]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        for rows in batch_ranges(prepared, max_batch_tokens) {
            anyhow::ensure!(
                rows.len() <= slots.groups,
                "{} rows in a batch, {} statistics slots",
                rows.len(),
                slots.groups
            );
            let batch: Vec<Prepared> = prepared[rows.clone()]
                .iter()
                .enumerate()
                .map(|(slot, p)| Prepared { group: slot as u32, ..p.clone() })
                .collect();
            slots.reset();
            let scored = self.score_prepared(&batch, Some(slots), rule, max_batch_tokens, |_, _| {})?;
            let words = slots.read_first_words(rows.len())?;
            fold(rows, scored, &words)?;
        }
        Ok(())
    }

    /// Statistics slots `score_per_example` needs for `prepared`: its largest batch.
    pub fn slots_for(prepared: &[Prepared], max_batch_tokens: usize) -> usize {
        batch_ranges(prepared, max_batch_tokens).iter().map(|r| r.len()).max().unwrap_or(0)
    }
}

/// Options per row: CVQA has 4; a data set with more uses its largest count.
pub fn options_per_row(examples: &[(usize, McExample)]) -> usize {
    examples.iter().map(|(_, e)| e.options.len()).max().unwrap_or(4)
}
