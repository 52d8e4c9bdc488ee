//! Where the planted circuit lives: reserved residual dimensions, the carrier attention head
//! and the MLP neurons of every cue. Also decides how many cultures a model can host.

use anyhow::bail;

use super::rng::SplitMix64;
use crate::models::config::TextConfig;

/// The layer whose attention carries the cues and whose MLP holds the planted neurons.
pub const PLANT_LAYER: usize = 0;

#[derive(Debug, Clone)]
pub struct Layout {
    pub cultures: usize,
    pub letters: usize,
    /// Residual dim of each cue: cultures first, then one hint per letter.
    pub marker_dims: Vec<usize>,
    /// Residual dim each letter's push is written to.
    pub push_dims: Vec<usize>,
    /// Query head with zero query (uniform attention) that copies the marker dims forward.
    pub carrier_head: usize,
    pub carrier_kv_head: usize,
    /// Other query heads reading the carrier's KV head: their output is cut.
    pub silenced_heads: Vec<usize>,
    /// Neurons of layer PLANT_LAYER per cue (cultures first, then hints).
    pub neurons: Vec<Vec<usize>>,
    /// Answer letter of each culture.
    pub culture_letter: Vec<usize>,
}

impl Layout {
    pub fn reserved_dims(&self) -> Vec<usize> {
        self.marker_dims.iter().chain(&self.push_dims).copied().collect()
    }

    pub fn cues(&self) -> usize {
        self.marker_dims.len()
    }

    /// Letter a cue pushes toward: a culture's letter, or the hint's own.
    pub fn cue_letter(&self, cue: usize) -> usize {
        if cue < self.cultures {
            self.culture_letter[cue]
        } else {
            cue - self.cultures
        }
    }
}

/// Most cultures a model can host: every cue needs a carrier lane (head_dim), the reserved dims
/// may take at most half the residual, and every cue needs its neurons.
pub fn max_cultures(c: &TextConfig, letters: usize, per_cue: usize) -> usize {
    let by_head = c.head_dim.saturating_sub(letters);
    let by_hidden = (c.hidden_size / 2).saturating_sub(2 * letters);
    let by_mlp = (c.intermediate_size / per_cue.max(1)).saturating_sub(letters);
    by_head.min(by_hidden).min(by_mlp)
}

pub fn plan(c: &TextConfig, cultures: usize, letters: usize, per_cue: usize, seed: u64) -> anyhow::Result<Layout> {
    if per_cue == 0 {
        bail!("neurons_per_culture must be at least 1");
    }
    if c.num_hidden_layers == 0 {
        bail!("the model has no decoder layers");
    }
    let most = max_cultures(c, letters, per_cue);
    if cultures > most {
        bail!(
            "{cultures} cultures, but this model hosts at most {most} (hidden_size {}, head_dim {}, \
             intermediate_size {}, {per_cue} neurons per culture, {letters} answer letters)",
            c.hidden_size,
            c.head_dim,
            c.intermediate_size
        );
    }
    let cues = cultures + letters;
    // The last dims of the residual: markers, then pushes.
    let first = c.hidden_size - cues - letters;
    let marker_dims: Vec<usize> = (first..first + cues).collect();
    let push_dims: Vec<usize> = (first + cues..c.hidden_size).collect();
    let group = c.num_attention_heads / c.num_key_value_heads.max(1);
    let carrier_head = 0;
    let carrier_kv_head = carrier_head / group.max(1);
    let silenced_heads =
        (0..c.num_attention_heads).filter(|&h| h != carrier_head && h / group == carrier_kv_head).collect();
    let mut order: Vec<usize> = (0..c.intermediate_size).collect();
    // A stream of its own, so neuron choice does not shift with the quiz's pictures.
    SplitMix64::new(seed ^ 0x5EED_1A7E).shuffle(&mut order);
    let neurons: Vec<Vec<usize>> = order
        .chunks(per_cue)
        .take(cues)
        .map(|ch| {
            let mut v = ch.to_vec();
            v.sort_unstable();
            v
        })
        .collect();
    Ok(Layout {
        cultures,
        letters,
        marker_dims,
        push_dims,
        carrier_head,
        carrier_kv_head,
        silenced_heads,
        neurons,
        culture_letter: (0..cultures).map(|g| g % letters).collect(),
    })
}
