//! Greedy decoding, shared by every model: the prefill is model-specific, the loop is not.

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
