//! Runs multiple-choice examples through a vision-language model in packed batches, returning
//! each example's option-letter logits and, optionally, accumulating neuron statistics into one
//! group per culture under a position rule. The same code serves every family
//! (models::vision_language).

use anyhow::Context;

use crate::eval::mc::{prompt_ids, PositionRule};
use crate::eval::prompt::PromptFormat;
use crate::eval::McExample;
use crate::models::decoder::{ForwardOptions, LogitRows};
use crate::models::{ImageSource, NeuronStats, Pixels, VisionLanguageModel};
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
    /// The longest prompt run, in tokens.
    pub longest_prompt: usize,
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
        longest_prompt: examples.iter().map(|p| p.ids.len()).max().unwrap_or(0),
    };
    let mut start = 0;
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
        let prompts: Vec<(&[u32], Option<&Pixels>)> = batch.iter().map(|p| (&p.ids[..], p.image.as_ref())).collect();
        let mut packed = model.pack(&prompts)?;
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
        let images: Vec<ImageSource<'_>> = batch
            .iter()
            .filter_map(|p| {
                let pixels = p.image.as_ref()?;
                Some(match &p.image_features {
                    Some(f) => ImageSource::Features(f),
                    None => ImageSource::Pixels(pixels),
                })
            })
            .collect();
        let mut cache = model.decoder().new_cache(packed.len())?;
        let fo =
            ForwardOptions { logits: LogitRows::Rows(packed.last_tokens()), stats: opts.stats, ..Default::default() };
        let res = model.forward(&packed, &images, &mut cache, &fo)?;
        for row in res.logits.chunks(vocab) {
            out.option_logits.push(option_ids.iter().map(|&i| row[i as usize]).collect());
        }
        start += batch.len();
        progress(start, examples.len());
    }
    Ok(out)
}
