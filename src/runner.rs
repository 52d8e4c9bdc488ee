//! `culturelens run`: one prompt (optionally with an image) through whichever supported model
//! the directory holds, greedy decoding, and the `--dump` file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::gpu::Gpu;
use crate::models::config::{Architecture, ModelConfig};
use crate::models::decoder::{Decoder, ForwardOptions, ForwardOutput, KvCache, LogitRows};
use crate::models::generate::{greedy_loop, Generation};
use crate::models::llava_next::{LlavaImage, LlavaNextForConditionalGeneration};
use crate::models::qwen2_5_vl::{ImageInput, Qwen2_5_VLForConditionalGeneration, VlPrompt};
use crate::models::{CausalLm, NeuronEdit, PackedBatch};
use crate::text::{expand_image_tokens, ChatMessage, TextProcessor};
use crate::vision::image_input::load_rgb;
use crate::vision::llava_next::{
    num_image_tokens as llava_image_tokens, preprocess as llava_preprocess, LlavaNextImageProcessorConfig,
};
use crate::vision::qwen2_vl::{preprocess, Qwen2VlImageProcessorConfig};

pub struct RunRequest {
    pub model_dir: PathBuf,
    pub prompt: String,
    pub image: Option<PathBuf>,
    pub raw: bool,
    pub max_new_tokens: usize,
    pub keep_prompt_logits: bool,
    /// Neuron edits applied while generating (`pipeline::steer::culture_edits` builds them from
    /// a culture's set); empty: the unmodified model.
    pub edits: Vec<NeuronEdit>,
    /// With edits: also generate without them, for a side-by-side answer.
    pub compare: bool,
}

pub struct RunResult {
    pub prompt_ids: Vec<u32>,
    /// Under `RunRequest::edits` when there are any.
    pub generation: Generation,
    pub answer: String,
    pub vocab_size: usize,
    /// With `compare`: the unmodified model's generation and answer.
    pub unmodified: Option<(Generation, String)>,
}

/// A generation under the request's edits, and the unmodified one with `compare`.
type Variants = (Generation, Option<Generation>);

/// Generates under the request's edits (set on the decoder's own intervention map, the
/// identity again afterwards) and, with `compare`, once more without them; each generation
/// prefills a fresh cache (`prefill_then_decode`).
fn generate(
    req: &RunRequest,
    prompt_len: usize,
    eos: &[u32],
    lm: &Decoder,
    prefill: impl Fn(&mut KvCache, LogitRows) -> anyhow::Result<ForwardOutput>,
    next_position: impl Fn(u32, usize) -> PackedBatch,
) -> anyhow::Result<Variants> {
    let generate = || -> anyhow::Result<Generation> {
        let mut cache = lm.new_cache(prompt_len.saturating_add(req.max_new_tokens))?;
        prefill_then_decode(req, prompt_len, eos, &mut cache, &prefill, &next_position, lm)
    };
    if req.edits.is_empty() {
        return Ok((generate()?, None));
    }
    let n = lm.config.num_hidden_layers * lm.config.intermediate_size;
    let (mut scale, mut shift) = (vec![1.0f32; n], vec![0.0f32; n]);
    for e in &req.edits {
        if e.neuron >= n {
            anyhow::bail!("neuron {} is outside the model's {n} LM neurons", e.neuron);
        }
        scale[e.neuron] = e.scale;
        shift[e.neuron] = e.shift;
    }
    lm.intervention.set(&scale, &shift)?;
    let edited = generate();
    lm.intervention.reset();
    let edited = edited?;
    let plain = if req.compare { Some(generate()?) } else { None };
    Ok((edited, plain))
}

/// Tokenizer-side work that needs no GPU, done first so bad input fails fast.
fn prompt_text(text: &TextProcessor, req: &RunRequest, image_tokens: Option<(&str, usize)>) -> anyhow::Result<String> {
    let rendered = if req.raw {
        req.prompt.clone()
    } else {
        let msg = if image_tokens.is_some() {
            ChatMessage::user_image_text(&req.prompt)
        } else {
            ChatMessage::user_text(&req.prompt)
        };
        text.render_chat(&[msg], true)
            .context("cannot apply the chat template (pass --raw to feed the prompt as is)")?
    };
    match image_tokens {
        Some((placeholder, n)) => expand_image_tokens(&rendered, placeholder, &[n]).map_err(anyhow::Error::msg),
        None => Ok(rendered),
    }
}

fn encode(text: &TextProcessor, req: &RunRequest, rendered: &str, context: usize) -> anyhow::Result<Vec<u32>> {
    let ids = if req.raw { text.encode(rendered, true)? } else { text.encode_prompt(rendered)? };
    if ids.len().saturating_add(req.max_new_tokens) > context {
        anyhow::bail!(
            "the prompt is {} tokens; with --max-new-tokens {} that is past the model's context of {context} \
             (max_position_embeddings)",
            ids.len(),
            req.max_new_tokens
        );
    }
    if ids.is_empty() {
        anyhow::bail!("the prompt encodes to no tokens");
    }
    Ok(ids)
}

pub fn run(gpu_for: impl FnOnce() -> anyhow::Result<Arc<Gpu>>, req: &RunRequest) -> anyhow::Result<RunResult> {
    let config = ModelConfig::load(&req.model_dir)?;
    let text = TextProcessor::load(&req.model_dir)?;
    let mut eos = text.eos_token_ids();
    eos.extend(config.eos_token_ids.iter().copied().filter(|id| !text.eos_token_ids().contains(id)));
    let (prompt_ids, (generation, plain), vocab_size) = match config.architecture {
        Architecture::Qwen2ForCausalLM | Architecture::MistralForCausalLM => {
            if let Some(img) = &req.image {
                anyhow::bail!("--image {}: {} is a text-only model", img.display(), config.architecture.hf_name());
            }
            let ids = encode(&text, req, &prompt_text(&text, req, None)?, config.text.max_position_embeddings)?;
            let gpu = gpu_for()?;
            let lm = CausalLm::load(&gpu, &req.model_dir)?;
            let batch = PackedBatch::from_sequences(std::slice::from_ref(&ids));
            let g = generate(
                req,
                ids.len(),
                &eos,
                &lm.model,
                |cache, rows| lm.model.forward(&batch, cache, &ForwardOptions { logits: rows, ..Default::default() }),
                PackedBatch::continuation,
            )?;
            (ids, g, lm.config.text.vocab_size)
        }
        Architecture::Qwen2_5_VLForConditionalGeneration => run_qwen2_5_vl(gpu_for, req, &config, &text, &eos)?,
        Architecture::LlavaNextForConditionalGeneration => run_llava_next(gpu_for, req, &config, &text, &eos)?,
    };
    let answer_of = |g: &Generation| -> anyhow::Result<String> {
        let ids: Vec<u32> = g.new_tokens.iter().copied().filter(|id| !eos.contains(id)).collect();
        Ok(text.decode(&ids, true)?)
    };
    let answer = answer_of(&generation)?;
    let unmodified = plain.map(|g| answer_of(&g).map(|a| (g, a))).transpose()?;
    Ok(RunResult { prompt_ids, generation, answer, vocab_size, unmodified })
}

fn run_qwen2_5_vl(
    gpu_for: impl FnOnce() -> anyhow::Result<Arc<Gpu>>,
    req: &RunRequest,
    config: &ModelConfig,
    text: &TextProcessor,
    eos: &[u32],
) -> anyhow::Result<(Vec<u32>, Variants, usize)> {
    let vc = config.vision.as_ref().expect("parsed with the architecture");
    let images = match &req.image {
        Some(path) => {
            let pcfg = Qwen2VlImageProcessorConfig::load(&req.model_dir)?;
            let processed =
                preprocess(&load_rgb(path)?, &pcfg).with_context(|| format!("preprocessing {}", path.display()))?;
            vec![ImageInput { pixel_values: processed.pixel_values, grid_thw: processed.grid_thw }]
        }
        None => Vec::new(),
    };
    let image_tokens = images.first().map(|i| i.grid_thw.iter().product::<usize>() / vc.merge_unit());
    let ids = vision_prompt_ids(text, req, config, vc.image_token_id, image_tokens)?;
    let gpu = gpu_for()?;
    let model = Qwen2_5_VLForConditionalGeneration::load(&gpu, &req.model_dir)?;
    let vl = model.pack(&[VlPrompt { ids: &ids, images: &images }])?;
    let delta = vl.rope_deltas[0];
    let generation = generate(
        req,
        ids.len(),
        eos,
        &model.model,
        |cache, rows| model.forward(&vl, &images, cache, &ForwardOptions { logits: rows, ..Default::default() }, None),
        |token, cached| PackedBatch::continuation_mrope(token, cached, delta),
    )?;
    Ok((ids, generation, config.text.vocab_size))
}

fn run_llava_next(
    gpu_for: impl FnOnce() -> anyhow::Result<Arc<Gpu>>,
    req: &RunRequest,
    config: &ModelConfig,
    text: &TextProcessor,
    eos: &[u32],
) -> anyhow::Result<(Vec<u32>, Variants, usize)> {
    let llava = config.llava_next.as_ref().expect("parsed with the architecture");
    let images = match &req.image {
        Some(path) => {
            let pcfg = LlavaNextImageProcessorConfig::load(&req.model_dir)?;
            let px = llava_preprocess(&load_rgb(path)?, &pcfg)
                .with_context(|| format!("preprocessing {}", path.display()))?;
            let tokens = llava_image_tokens(px.image_size_hw, &pcfg, llava.vision.patch_size, "default");
            vec![(
                LlavaImage { pixel_values: px.pixel_values, crops: px.n_crops, image_size_hw: px.image_size_hw },
                tokens,
            )]
        }
        None => Vec::new(),
    };
    let ids = vision_prompt_ids(text, req, config, llava.image_token_index, images.first().map(|(_, n)| *n))?;
    let gpu = gpu_for()?;
    let model = LlavaNextForConditionalGeneration::load(&gpu, &req.model_dir)?;
    let images: Vec<LlavaImage> = images.into_iter().map(|(i, _)| i).collect();
    let batch = PackedBatch::from_sequences(std::slice::from_ref(&ids));
    let generation = generate(
        req,
        ids.len(),
        eos,
        &model.model,
        |cache, rows| model.forward(&batch, &images, cache, &ForwardOptions { logits: rows, ..Default::default() }),
        PackedBatch::continuation,
    )?;
    Ok((ids, generation, config.text.vocab_size))
}

/// Prompt ids of a vision-language run: the image placeholder (`image_token_id`'s string)
/// expanded to `image_tokens` copies when an image was given; a prompt that carries image
/// tokens without an image is an error.
fn vision_prompt_ids(
    text: &TextProcessor,
    req: &RunRequest,
    config: &ModelConfig,
    image_token_id: u32,
    image_tokens: Option<usize>,
) -> anyhow::Result<Vec<u32>> {
    let placeholder = text
        .id_to_token(image_token_id)
        .with_context(|| format!("image token id {image_token_id} is not in the tokenizer"))?;
    let rendered = prompt_text(text, req, image_tokens.map(|n| (placeholder.as_str(), n)))?;
    let ids = encode(text, req, &rendered, config.text.max_position_embeddings)?;
    if image_tokens.is_none() && ids.contains(&image_token_id) {
        anyhow::bail!("the prompt contains image tokens ({placeholder}) but no --image was given");
    }
    Ok(ids)
}

/// Greedy generation after a model-specific prefill: `prefill` runs the prompt (images
/// included) into the cache; each new token then goes through the language model alone, placed
/// by `next_position` (plain or M-RoPE continuation).
fn prefill_then_decode(
    req: &RunRequest,
    prompt_len: usize,
    eos: &[u32],
    cache: &mut KvCache,
    prefill: impl FnOnce(&mut KvCache, LogitRows) -> anyhow::Result<ForwardOutput>,
    next_position: impl Fn(u32, usize) -> PackedBatch,
    lm: &Decoder,
) -> anyhow::Result<Generation> {
    let vocab = lm.config.vocab_size;
    let start = std::time::Instant::now();
    let rows = if req.keep_prompt_logits { LogitRows::All } else { LogitRows::Rows(vec![prompt_len as u32 - 1]) };
    let out = prefill(cache, rows)?;
    let prefill_seconds = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    let new_tokens = greedy_loop(&out.logits[out.logits.len() - vocab..], req.max_new_tokens, eos, |token| {
        let step = next_position(token, cache.len);
        Ok(lm.forward(&step, cache, &ForwardOptions { logits: LogitRows::Rows(vec![0]), ..Default::default() })?.logits)
    })?;
    Ok(Generation {
        new_tokens,
        prompt_logits: if req.keep_prompt_logits { out.logits } else { Vec::new() },
        prefill_seconds,
        decode_seconds: start.elapsed().as_secs_f64(),
    })
}

/// The `--dump` file: input_ids [T] i64 and logits [T, vocab] f32 for every prompt position.
pub fn write_dump(path: &Path, ids: &[u32], logits: &[f32], vocab: usize) -> anyhow::Result<()> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let ids64: Vec<u8> = ids.iter().flat_map(|&i| (i as i64).to_le_bytes()).collect();
    let lg: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensors = [
        ("input_ids", TensorView::new(Dtype::I64, vec![ids.len()], &ids64)?),
        ("logits", TensorView::new(Dtype::F32, vec![ids.len(), vocab], &lg)?),
    ];
    safetensors::serialize_to_file(tensors, None, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
