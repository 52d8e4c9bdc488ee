use super::batch::PackedBatch;
use super::decoder::{Decoder, ForwardOptions, LogitRows};

/// Result of greedy decoding one prompt.
pub struct Generation {
    pub new_tokens: Vec<u32>,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
    /// [prompt_len, vocab] when asked for (the `--dump` format), else empty.
    pub prompt_logits: Vec<f32>,
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// The greedy loop shared by every model: `last` is the prefill's logit row for the last prompt
/// position; `step(token)` feeds one token through the cache and returns its logit row.
pub fn greedy_loop(
    last: &[f32],
    max_new_tokens: usize,
    eos: &[u32],
    mut step: impl FnMut(u32) -> anyhow::Result<Vec<f32>>,
) -> anyhow::Result<Vec<u32>> {
    let mut next = argmax(last);
    let mut new_tokens = Vec::new();
    while new_tokens.len() < max_new_tokens {
        new_tokens.push(next);
        if eos.contains(&next) || new_tokens.len() == max_new_tokens {
            break;
        }
        next = argmax(&step(next)?);
    }
    Ok(new_tokens)
}

/// Greedy decoding with a KV cache: one prefill over the prompt, then one token per step until
/// an end-of-sequence id or `max_new_tokens`.
pub fn generate_greedy(
    model: &Decoder,
    prompt: &[u32],
    max_new_tokens: usize,
    eos: &[u32],
    keep_prompt_logits: bool,
) -> anyhow::Result<Generation> {
    let vocab = model.config.vocab_size;
    let mut cache = model.new_cache(prompt.len() + max_new_tokens)?;
    let batch = PackedBatch::from_sequences(&[prompt.to_vec()]);
    let start = std::time::Instant::now();
    let rows = if keep_prompt_logits { LogitRows::All } else { LogitRows::Rows(vec![prompt.len() as u32 - 1]) };
    let out = model.forward(&batch, &mut cache, &ForwardOptions { logits: rows, ..Default::default() })?;
    let last = &out.logits[out.logits.len() - vocab..];
    let mut next = argmax(last);
    let prefill_seconds = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    let mut new_tokens = Vec::new();
    while new_tokens.len() < max_new_tokens {
        new_tokens.push(next);
        if eos.contains(&next) || new_tokens.len() == max_new_tokens {
            break;
        }
        let step = PackedBatch::continuation(next, cache.len);
        let out = model.forward(
            &step,
            &mut cache,
            &ForwardOptions { logits: LogitRows::Rows(vec![0]), ..Default::default() },
        )?;
        next = argmax(&out.logits);
    }
    let prompt_logits = if keep_prompt_logits { out.logits } else { Vec::new() };
    Ok(Generation { new_tokens, prompt_logits, prefill_seconds, decode_seconds: start.elapsed().as_secs_f64() })
}
