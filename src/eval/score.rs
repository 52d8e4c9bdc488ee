//! Runs multiple-choice examples through a vision-language model in packed batches, returning
//! each example's option-letter logits and, optionally, accumulating neuron statistics into one
//! group per culture under a position rule. The same code serves every family
//! (models::vision_language).

use std::ops::Range;

use anyhow::Context;

use crate::eval::mc::{prompt_ids, PositionRule};
use crate::eval::prompt::PromptFormat;
use crate::eval::McExample;
use crate::models::batch::PackedBatch;
use crate::models::decoder::{ForwardOptions, LogitRows};
use crate::models::{ImageSource, InterventionMaps, NeuronStats, Pixels, VisionLanguageModel};
use crate::ops::swiglu::EXCLUDED;
use crate::text::TextProcessor;
use crate::vision::image_input::decode_rgb;

pub struct ScoreOptions<'a> {
    /// Accumulate statistics of every example into its group's slot.
    pub stats: Option<&'a NeuronStats>,
    pub rule: PositionRule,
    /// Token budget of one packed batch.
    pub max_batch_tokens: usize,
}

/// One example ready for the model: prompt ids and preprocessed image, kept across passes so
/// repeated runs (ablations) skip decoding, resizing and tokenising.
#[derive(Clone)]
pub struct Prepared {
    pub ids: Vec<u32>,
    pub image: Option<Pixels>,
    /// Image tokens in `ids` (all of them filled by `image`).
    pub image_tokens: usize,
    pub group: u32,
    /// The vision tower's output for `image`, once computed (interventions act on the LM only,
    /// so every ablation pass can reuse it).
    pub image_features: Option<Vec<f32>>,
}

/// Image tokens whose features one vision-tower submission computes when caching.
const FEATURE_BATCH_TOKENS: usize = 4096;

/// Runs the vision tower once over every prepared image and keeps its output, when all of it
/// fits in `max_bytes` of host memory; returns whether it did.
pub fn cache_image_features(
    model: &VisionLanguageModel,
    prepared: &mut [Prepared],
    max_bytes: usize,
) -> anyhow::Result<bool> {
    let rows: usize = prepared.iter().filter(|p| p.image.is_some()).map(|p| p.image_tokens).sum();
    if rows * model.config().text.hidden_size * 4 > max_bytes {
        return Ok(false);
    }
    // One submission per few images: the vision tower's buffers live until it finishes, and a
    // 7B tower's are hundreds of MB per image.
    let mut start = 0;
    while start < prepared.len() {
        let mut end = start;
        let mut tokens = 0;
        while end < prepared.len() && (end == start || tokens + prepared[end].image_tokens <= FEATURE_BATCH_TOKENS) {
            tokens += prepared[end].image_tokens;
            end += 1;
        }
        let chunk = &mut prepared[start..end];
        let images: Vec<&Pixels> = chunk.iter().filter_map(|p| p.image.as_ref()).collect();
        let mut features = model.image_features(&images)?.into_iter();
        for p in chunk.iter_mut().filter(|p| p.image.is_some()) {
            p.image_features = Some(features.next().context("one feature block per image")?);
        }
        start = end;
    }
    Ok(true)
}

/// The string of the model's image token, which the chat template's image slot must render.
pub fn image_placeholder(id: u32, text: &TextProcessor) -> anyhow::Result<String> {
    text.id_to_token(id).with_context(|| {
        format!("{}: the image token id {id} is not in the tokenizer", text.tokenizer().path().display())
    })
}

fn prepare(
    model: &VisionLanguageModel,
    text: &TextProcessor,
    format: &PromptFormat,
    placeholder: &str,
    group: usize,
    ex: &McExample,
) -> anyhow::Result<Prepared> {
    let row = || format!("row {}", ex.id);
    let image = match &ex.image {
        Some(bytes) => {
            let rgb = decode_rgb(bytes, &row())?;
            Some(model.process_image(&rgb).with_context(row)?)
        }
        None => None,
    };
    let tokens = image.as_ref().map(|(_, n)| (placeholder, *n));
    let ids = prompt_ids(text, format, &ex.question, &ex.options, tokens).with_context(row)?;
    let context = model.config().text.max_position_embeddings;
    if ids.len() > context {
        anyhow::bail!(
            "{}: the prompt is {} tokens, longer than the model's context of {context} (max_position_embeddings in {})",
            row(),
            ids.len(),
            model.config().path.display()
        );
    }
    let image_tokens = ids.iter().filter(|&&t| t == model.image_token_id()).count();
    let want = tokens.map_or(0, |(_, n)| n);
    if image_tokens != want {
        anyhow::bail!(
            "{}: the prompt holds {image_tokens} image tokens ({placeholder}) but its image fills {want}; \
             does the question or an option contain the image placeholder?",
            row()
        );
    }
    Ok(Prepared { ids, image: image.map(|(p, _)| p), image_tokens, group: group as u32, image_features: None })
}

/// What a scoring pass returns.
pub struct Scored {
    /// [examples][options], in input order.
    pub option_logits: Vec<Vec<f32>>,
    /// Per group: positions counted into its statistics under the rule (N_g).
    pub positions: Vec<u64>,
    /// Per group: prompt tokens, and image tokens among them, whatever the rule.
    pub tokens: Vec<u64>,
    pub image_tokens: Vec<u64>,
}

impl Scored {
    /// Per-group counts padded to `groups` groups (a batch need not contain the last ones):
    /// (positions, tokens, image tokens).
    pub fn counts_padded(&self, groups: usize) -> [Vec<u64>; 3] {
        [&self.positions, &self.tokens, &self.image_tokens].map(|v| {
            let mut p = v.clone();
            p.resize(groups, 0);
            p
        })
    }

    /// Prompt tokens run, all groups.
    pub fn total_tokens(&self) -> u64 {
        self.tokens.iter().sum()
    }
}

/// Prompt ids and pixels of every example, checked (image decodes, the processor and the model
/// agree on its size, the prompt's image-token count agrees) before any GPU work. The template's
/// image slot is checked by `eval::mc::check_image_slot` (done when a `CultureModel` loads).
pub fn prepare_all(
    model: &VisionLanguageModel,
    text: &TextProcessor,
    format: &PromptFormat,
    examples: &[(usize, McExample)],
) -> anyhow::Result<Vec<Prepared>> {
    let placeholder = image_placeholder(model.image_token_id(), text)?;
    examples.iter().map(|(g, ex)| prepare(model, text, format, &placeholder, *g, ex)).collect()
}

/// Scores `examples` (group index, row) in order.
pub fn score_examples(
    model: &VisionLanguageModel,
    text: &TextProcessor,
    examples: &[(usize, McExample)],
    option_ids: &[u32],
    opts: &ScoreOptions<'_>,
    progress: impl FnMut(usize, usize),
) -> anyhow::Result<Scored> {
    let prepared = prepare_all(model, text, &PromptFormat::Default, examples)?;
    score_prepared(model, &prepared, option_ids, opts, progress)
}

/// Scores prepared examples in order, packing them into batches of at most
/// `opts.max_batch_tokens` tokens (a longer prompt runs alone).
pub fn score_prepared(
    model: &VisionLanguageModel,
    examples: &[Prepared],
    option_ids: &[u32],
    opts: &ScoreOptions<'_>,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<Scored> {
    let vocab = model.config().text.vocab_size;
    let image_token = model.image_token_id();
    let groups = examples.iter().map(|p| p.group as usize + 1).max().unwrap_or(0);
    let mut out = Scored {
        option_logits: Vec::with_capacity(examples.len()),
        positions: vec![0; groups],
        tokens: vec![0; groups],
        image_tokens: vec![0; groups],
    };
    for rows in batch_ranges(examples, opts.max_batch_tokens) {
        let batch = &examples[rows.clone()];
        let mut packed = pack(model, batch)?;
        for (s, p) in batch.iter().enumerate() {
            let r = packed.sequence(s);
            let len = r.len();
            let g = p.group as usize;
            for (i, t) in r.enumerate() {
                let is_image = packed.tokens[t] == image_token;
                let counted = opts.rule.counts(i, len, is_image);
                packed.token_group[t] = if counted { p.group } else { EXCLUDED };
                out.positions[g] += counted as u64;
                out.image_tokens[g] += is_image as u64;
            }
            out.tokens[g] += len as u64;
        }
        let mut cache = model.decoder().new_cache(packed.len())?;
        let fo =
            ForwardOptions { logits: LogitRows::Rows(packed.last_tokens()), stats: opts.stats, ..Default::default() };
        let res = model.forward(&packed, &image_sources(batch), &mut cache, &fo)?;
        for row in res.logits.chunks(vocab) {
            out.option_logits.push(option_ids.iter().map(|&i| row[i as usize]).collect());
        }
        progress(rows.end, examples.len());
    }
    Ok(out)
}

/// Consecutive runs of `examples` of at most `max_batch_tokens` tokens each (a longer prompt
/// runs alone): the packing every scoring pass uses, so that passes line up batch by batch.
pub fn batch_ranges(examples: &[Prepared], max_batch_tokens: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < examples.len() {
        let mut end = start;
        let mut tokens = 0;
        while end < examples.len() && (end == start || tokens + examples[end].ids.len() <= max_batch_tokens) {
            tokens += examples[end].ids.len();
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

fn pack(model: &VisionLanguageModel, batch: &[Prepared]) -> anyhow::Result<PackedBatch> {
    let prompts: Vec<(&[u32], Option<&Pixels>)> = batch.iter().map(|p| (&p.ids[..], p.image.as_ref())).collect();
    model.pack(&prompts)
}

/// Each image of `batch`, as its cached features where they were kept.
fn image_sources(batch: &[Prepared]) -> Vec<ImageSource<'_>> {
    batch
        .iter()
        .filter_map(|p| {
            let pixels = p.image.as_ref()?;
            Some(match &p.image_features {
                Some(f) => ImageSource::Features(f),
                None => ImageSource::Pixels(pixels),
            })
        })
        .collect()
}

/// `order` (maps by first touched layer, descending) cut into groups of at most `most` maps
/// that touch the same first layer: each group's shared prefix is as long as its maps allow,
/// so the layers run are the fewest (merging groups would save a prefix but rerun the layers
/// between the two splits once per map).
pub fn fusion_groups(order: &[u32], first_touched: impl Fn(u32) -> usize, most: usize) -> Vec<&[u32]> {
    let mut out = Vec::new();
    for run in order.chunk_by(|&a, &b| first_touched(a) == first_touched(b)) {
        out.extend(run.chunks(most.max(1)));
    }
    out
}

/// Tokens one fused pass may hold (its copies of a batch together), unless `max_fused_tokens`
/// says less: each copy needs its own KV cache rows and activations.
pub const DEFAULT_FUSED_TOKENS: usize = 32768;

/// What scoring under many intervention maps did, for the benchmark and the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FusedCounts {
    /// Forward passes run.
    pub passes: usize,
    /// Forward passes one map at a time would have run (batches × maps).
    pub unfused_passes: usize,
    /// Token-layers run, and what one map at a time would have run.
    pub token_layers: u64,
    pub unfused_token_layers: u64,
}

impl FusedCounts {
    pub fn add(&mut self, o: &FusedCounts) {
        self.passes += o.passes;
        self.unfused_passes += o.unfused_passes;
        self.token_layers += o.token_layers;
        self.unfused_token_layers += o.unfused_token_layers;
    }
}

/// Scores prepared examples once per intervention map of `maps` ([map][example][option]),
/// fusing maps: for each packed batch (the packing of [`score_prepared`]), copies of it under
/// up to `max_fused_tokens / batch tokens` maps that first touch the same layer run in one
/// forward (0: no fusion, one plain pass per map), the layers below it once
/// ([`ForwardOptions::branches`]). The logits are the same bits as one pass per map.
pub fn score_under_maps(
    model: &VisionLanguageModel,
    examples: &[Prepared],
    option_ids: &[u32],
    maps: &InterventionMaps,
    max_batch_tokens: usize,
    max_fused_tokens: usize,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<(Vec<Vec<Vec<f32>>>, FusedCounts)> {
    let decoder = model.decoder();
    let (vocab, layers) = (model.config().text.vocab_size, decoder.config.num_hidden_layers);
    let mut order: Vec<u32> = (0..maps.maps as u32).collect();
    order.sort_by_key(|&m| std::cmp::Reverse(maps.first_touched(m as usize)));
    let mut out = vec![Vec::with_capacity(examples.len()); maps.maps];
    let mut counts = FusedCounts::default();
    let batches = batch_ranges(examples, max_batch_tokens);
    let work = batches.len() * maps.maps;
    for (b, rows) in batches.iter().enumerate() {
        let batch = &examples[rows.clone()];
        let packed = pack(model, batch)?;
        let t = packed.len();
        let fused = (max_fused_tokens.min(decoder.max_pass_tokens()) / t).max(1);
        let mut done = 0;
        for group in fusion_groups(&order, |m| maps.first_touched(m as usize), fused) {
            let logits = if max_fused_tokens > 0 && t * group.len() <= decoder.max_pass_tokens() {
                let mut cache = decoder.new_cache(t * group.len())?;
                let fo = ForwardOptions {
                    logits: LogitRows::Rows(packed.last_tokens()),
                    interventions: Some(maps),
                    branches: Some(group),
                    ..Default::default()
                };
                let split = group.iter().map(|&m| maps.first_touched(m as usize)).min().unwrap_or(layers);
                counts.token_layers += (t * split.min(layers) + t * group.len() * (layers - split.min(layers))) as u64;
                model.forward(&packed, &image_sources(batch), &mut cache, &fo)?.logits
            } else {
                // Fusion off, or a batch longer than one pass: one map at a time (`fused` is 1),
                // as plain passes.
                let mut single = packed.clone();
                single.sequence_map = vec![group[0]; single.num_sequences()];
                let mut cache = decoder.new_cache(t)?;
                let fo = ForwardOptions {
                    logits: LogitRows::Rows(single.last_tokens()),
                    interventions: Some(maps),
                    ..Default::default()
                };
                counts.token_layers += (t * layers) as u64;
                model.forward(&single, &image_sources(batch), &mut cache, &fo)?.logits
            };
            counts.passes += 1;
            for (&m, copy) in group.iter().zip(logits.chunks(batch.len() * vocab)) {
                for row in copy.chunks(vocab) {
                    out[m as usize].push(option_ids.iter().map(|&i| row[i as usize]).collect());
                }
            }
            done += group.len();
            progress(b * maps.maps + done, work);
        }
        counts.unfused_passes += maps.maps;
        counts.unfused_token_layers += (t * layers * maps.maps) as u64;
    }
    Ok((out, counts))
}
