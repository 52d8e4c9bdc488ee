//! Runs multiple-choice examples through a vision-language model in packed batches, returning
//! each example's option-letter logits and, optionally, accumulating neuron statistics into one
//! group per culture under a position rule.

use crate::eval::mc::{prompt_ids, PositionRule};
use crate::eval::McExample;
use crate::models::decoder::{ForwardOptions, LogitRows};
use crate::models::qwen2_5_vl::{ImageInput, Qwen2_5_VLForConditionalGeneration, VlPrompt};
use crate::models::NeuronStats;
use crate::ops::swiglu::EXCLUDED;
use crate::text::TextProcessor;
use crate::vision::image_input::decode_rgb;
use crate::vision::qwen2_vl::{preprocess, Qwen2VlImageProcessorConfig};

pub struct ScoreOptions<'a> {
    /// Accumulate statistics of every example into its group's slot.
    pub stats: Option<&'a NeuronStats>,
    pub rule: PositionRule,
    /// Token budget of one packed batch.
    pub max_batch_tokens: usize,
}

/// One example ready for the model: prompt ids and preprocessed image, kept across passes so
/// repeated runs (ablations) skip decoding, resizing and tokenising.
pub struct Prepared {
    pub ids: Vec<u32>,
    pub image: Option<ImageInput>,
    pub group: u32,
    /// The vision tower's output for `image`, once computed (interventions act on the LM only,
    /// so every ablation pass can reuse it).
    pub image_embeds: Option<Vec<f32>>,
}

/// Runs the vision tower once over every prepared image and keeps its output, when all of it
/// fits in `max_bytes` of host memory; returns whether it did.
pub fn cache_image_embeds(
    model: &Qwen2_5_VLForConditionalGeneration,
    prepared: &mut [Prepared],
    max_bytes: usize,
) -> anyhow::Result<bool> {
    let merge = model.visual.config.merge_unit();
    let rows: usize =
        prepared.iter().filter_map(|p| p.image.as_ref()).map(|i| i.grid_thw.iter().product::<usize>() / merge).sum();
    if rows * model.config.text.hidden_size * 4 > max_bytes {
        return Ok(false);
    }
    let hidden = model.config.text.hidden_size;
    for chunk in prepared.chunks_mut(64) {
        let images: Vec<ImageInput> = chunk.iter().filter_map(|p| p.image.clone()).collect();
        if images.is_empty() {
            continue;
        }
        let embeds = model.image_embeds(&images, None)?;
        let mut at = 0;
        for p in chunk.iter_mut() {
            if let Some(img) = &p.image {
                let n = img.grid_thw.iter().product::<usize>() / merge * hidden;
                p.image_embeds = Some(embeds[at..at + n].to_vec());
                at += n;
            }
        }
    }
    Ok(true)
}

fn prepare(
    model: &Qwen2_5_VLForConditionalGeneration,
    text: &TextProcessor,
    pcfg: &Qwen2VlImageProcessorConfig,
    placeholder: &str,
    group: usize,
    ex: &McExample,
) -> anyhow::Result<Prepared> {
    let vc = &model.visual.config;
    let image = match &ex.image {
        Some(bytes) => {
            let rgb = decode_rgb(bytes, &format!("row {}", ex.id))?;
            let p = preprocess(&rgb, pcfg)?;
            Some(ImageInput { pixel_values: p.pixel_values, grid_thw: p.grid_thw })
        }
        None => None,
    };
    let tokens = image.as_ref().map(|i| (placeholder, i.grid_thw.iter().product::<usize>() / vc.merge_unit()));
    let ids = prompt_ids(text, &ex.question, &ex.options, tokens)?;
    Ok(Prepared { ids, image, group: group as u32, image_embeds: None })
}

/// What a scoring pass returns.
pub struct Scored {
    /// [examples][options], in input order.
    pub option_logits: Vec<Vec<f32>>,
    /// Positions counted into each group's statistics under the rule (N_g).
    pub positions: Vec<u64>,
    /// Prompt tokens run, all positions.
    pub tokens: u64,
}

impl Scored {
    /// Positions per group for `groups` groups (a batch need not contain the last ones).
    pub fn positions_padded(&self, groups: usize) -> Vec<u64> {
        let mut p = self.positions.clone();
        p.resize(groups, 0);
        p
    }
}

/// Scores `examples` (group index, row) in order.
pub fn score_qwen2_5_vl(
    model: &Qwen2_5_VLForConditionalGeneration,
    text: &TextProcessor,
    pcfg: &Qwen2VlImageProcessorConfig,
    examples: &[(usize, McExample)],
    option_ids: &[u32],
    opts: &ScoreOptions<'_>,
    progress: impl FnMut(usize, usize),
) -> anyhow::Result<Scored> {
    let prepared = prepare_all(model, text, pcfg, examples)?;
    score_prepared(model, &prepared, option_ids, opts, progress)
}

/// Prompt ids and pixels of every example.
pub fn prepare_all(
    model: &Qwen2_5_VLForConditionalGeneration,
    text: &TextProcessor,
    pcfg: &Qwen2VlImageProcessorConfig,
    examples: &[(usize, McExample)],
) -> anyhow::Result<Vec<Prepared>> {
    let vc = &model.visual.config;
    let placeholder = text
        .id_to_token(vc.image_token_id)
        .ok_or_else(|| anyhow::anyhow!("image_token_id {} is not in the tokenizer", vc.image_token_id))?;
    examples.iter().map(|(g, ex)| prepare(model, text, pcfg, &placeholder, *g, ex)).collect()
}

/// Scores prepared examples in order, packing them into batches of at most
/// `opts.max_batch_tokens` tokens.
pub fn score_prepared(
    model: &Qwen2_5_VLForConditionalGeneration,
    examples: &[Prepared],
    option_ids: &[u32],
    opts: &ScoreOptions<'_>,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<Scored> {
    let vc = &model.visual.config;
    let vocab = model.config.text.vocab_size;
    let mut out = Vec::with_capacity(examples.len());
    let mut positions = vec![0u64; examples.iter().map(|p| p.group as usize + 1).max().unwrap_or(0)];
    let mut start = 0;
    let mut total_tokens = 0u64;
    while start < examples.len() {
        let mut end = start;
        let mut tokens = 0;
        while end < examples.len() {
            let p = &examples[end];
            if end > start && tokens + p.ids.len() > opts.max_batch_tokens {
                break;
            }
            tokens += p.ids.len();
            end += 1;
        }
        let batch = &examples[start..end];
        let prompts: Vec<VlPrompt<'_>> =
            batch.iter().map(|p| VlPrompt { ids: &p.ids, images: p.image.as_slice() }).collect();
        let images: Vec<ImageInput> = batch.iter().filter_map(|p| p.image.clone()).collect();
        let mut vl = model.pack(&prompts)?;
        for (s, p) in batch.iter().enumerate() {
            let r = vl.batch.sequence(s);
            let len = r.len();
            for (i, t) in r.enumerate() {
                let is_image = vl.batch.tokens[t] == vc.image_token_id;
                let counted = opts.rule.counts(i, len, is_image);
                vl.batch.token_group[t] = if counted { p.group } else { EXCLUDED };
                positions[p.group as usize] += counted as u64;
            }
        }
        total_tokens += vl.batch.len() as u64;
        let mut cache = model.model.new_cache(vl.batch.len())?;
        let fo =
            ForwardOptions { logits: LogitRows::Rows(vl.batch.last_tokens()), stats: opts.stats, ..Default::default() };
        let cached: Option<Vec<(&[f32], [usize; 3])>> = batch
            .iter()
            .filter_map(|p| p.image.as_ref().map(|i| p.image_embeds.as_deref().map(|e| (e, i.grid_thw))))
            .collect();
        let res = match cached {
            Some(embeds) => model.forward_with_image_embeds(&vl, &embeds, &mut cache, &fo)?,
            None => model.forward(&vl, &images, &mut cache, &fo, None)?,
        };
        for row in res.logits.chunks(vocab) {
            out.push(option_ids.iter().map(|&i| row[i as usize]).collect());
        }
        start += batch.len();
        progress(start, examples.len());
    }
    Ok(Scored { option_logits: out, positions, tokens: total_tokens })
}
