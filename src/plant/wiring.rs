//! The weight edits that plant the circuit (see the module doc of `plant` for the why).
//!
//! Invariant: the reserved residual dims are written only by the marker embeddings, the
//! carrier head and the planted neurons, and read only by the carrier's values, the planted
//! neurons and the letter rows of the LM head. Everything else in the model keeps its weights.

use anyhow::Context;

use super::cues::Cues;
use super::layout::{Layout, PLANT_LAYER};
use super::target::{PlantTarget, VisionOutput};
use super::weights::Checkpoint;
use crate::models::config::TextConfig;

/// Magnitudes, all exact in bf16. The carried marker is diluted by 1/position under uniform
/// attention, so value × output gain makes it dominate the residual again; the decoy push is a
/// third of a culture's so a culture always wins while its neurons live.
pub const MARKER: f32 = 32.0;
pub const CARRY_V: f32 = 16.0;
pub const CARRY_O: f32 = 32.0;
pub const GATE: f32 = 1.0;
pub const UP: f32 = 1.0;
pub const PUSH: f32 = 1.0;
pub const DECOY_PUSH: f32 = 1.0 / 3.0;
pub const LETTER_READ: f32 = 4.0;

/// Applies every edit to the tensors `target` names.
pub fn wire(
    ck: &mut Checkpoint,
    c: &TextConfig,
    target: &PlantTarget,
    layout: &Layout,
    cues: &Cues,
    letter_ids: &[u32],
) -> anyhow::Result<()> {
    let markers = cues.culture_markers.iter().flatten().chain(cues.hints.iter().map(|h| &h.marker));
    if let Some(bad) = markers.chain(letter_ids).find(|&&id| id as usize >= c.vocab_size) {
        anyhow::bail!("token id {bad} is outside the model's vocabulary (vocab_size {})", c.vocab_size);
    }
    let prefix = target.prefix;
    let reserved = layout.reserved_dims();
    embeddings(ck, c, prefix, layout, cues, &reserved)?;
    for l in 0..c.num_hidden_layers {
        isolate_layer(ck, c, &format!("{prefix}layers.{l}"), &reserved)?;
    }
    let p = format!("{prefix}layers.{PLANT_LAYER}");
    carrier(ck, c, &p, layout)?;
    neurons(ck, c, &p, layout)?;
    let norm = ck.vector(&format!("{prefix}norm.weight"), c.hidden_size)?;
    reserved.iter().for_each(|&d| norm[d] = 1.0);
    lm_head(ck, c, target, layout, letter_ids, &reserved)?;
    for out in &target.vision_outputs {
        vision_output(ck, c, out, &reserved)?;
    }
    Ok(())
}

/// Reserved dims are zero in every token embedding except each marker token's own cue dim.
fn embeddings(
    ck: &mut Checkpoint,
    c: &TextConfig,
    prefix: &str,
    layout: &Layout,
    cues: &Cues,
    reserved: &[usize],
) -> anyhow::Result<()> {
    let mut e = ck.matrix(&format!("{prefix}embed_tokens.weight"), c.vocab_size, c.hidden_size)?;
    reserved.iter().for_each(|&d| e.zero_col(d));
    let markers = cues.culture_markers.iter().cloned().chain(cues.hints.iter().map(|h| vec![h.marker]));
    for (cue, tokens) in markers.enumerate() {
        for &t in &tokens {
            e.set(t as usize, layout.marker_dims[cue], MARKER);
        }
    }
    Ok(())
}

/// Nothing of the original model reads or writes the reserved dims; norms pass them at gain 1.
fn isolate_layer(ck: &mut Checkpoint, c: &TextConfig, p: &str, reserved: &[usize]) -> anyhow::Result<()> {
    let h = c.hidden_size;
    let (q_dim, kv_dim) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
    for norm in ["input_layernorm", "post_attention_layernorm"] {
        let w = ck.vector(&format!("{p}.{norm}.weight"), h)?;
        reserved.iter().for_each(|&d| w[d] = 1.0);
    }
    let reads = [
        ("self_attn.q_proj", q_dim),
        ("self_attn.k_proj", kv_dim),
        ("self_attn.v_proj", kv_dim),
        ("mlp.gate_proj", c.intermediate_size),
        ("mlp.up_proj", c.intermediate_size),
    ];
    for (name, rows) in reads {
        let mut m = ck.matrix(&format!("{p}.{name}.weight"), rows, h)?;
        reserved.iter().for_each(|&d| m.zero_col(d));
    }
    for (name, cols) in [("self_attn.o_proj", q_dim), ("mlp.down_proj", c.intermediate_size)] {
        let mut m = ck.matrix(&format!("{p}.{name}.weight"), h, cols)?;
        reserved.iter().for_each(|&d| m.zero_row(d));
    }
    Ok(())
}

/// Zero query → uniform causal attention; the values copy the marker dims and the output
/// writes them back scaled, so every later position of the prompt holds the cues it follows.
fn carrier(ck: &mut Checkpoint, c: &TextConfig, p: &str, layout: &Layout) -> anyhow::Result<()> {
    let (h, hd) = (c.hidden_size, c.head_dim);
    let (q_dim, kv_dim) = (c.num_attention_heads * hd, c.num_key_value_heads * hd);
    let q_rows = layout.carrier_head * hd..(layout.carrier_head + 1) * hd;
    let kv_rows = layout.carrier_kv_head * hd..(layout.carrier_kv_head + 1) * hd;
    let mut q = ck.matrix(&format!("{p}.self_attn.q_proj.weight"), q_dim, h)?;
    q_rows.clone().for_each(|r| q.zero_row(r));
    let mut v = ck.matrix(&format!("{p}.self_attn.v_proj.weight"), kv_dim, h)?;
    kv_rows.clone().for_each(|r| v.zero_row(r));
    for (lane, &d) in layout.marker_dims.iter().enumerate() {
        v.set(kv_rows.start + lane, d, CARRY_V);
    }
    if c.qkv_bias {
        ck.vector(&format!("{p}.self_attn.q_proj.bias"), q_dim)?[q_rows].fill(0.0);
        ck.vector(&format!("{p}.self_attn.v_proj.bias"), kv_dim)?[kv_rows].fill(0.0);
    }
    let mut o = ck.matrix(&format!("{p}.self_attn.o_proj.weight"), h, q_dim)?;
    for head in std::iter::once(layout.carrier_head).chain(layout.silenced_heads.iter().copied()) {
        (head * hd..(head + 1) * hd).for_each(|col| o.zero_col(col));
    }
    for (lane, &d) in layout.marker_dims.iter().enumerate() {
        o.set(d, layout.carrier_head * hd + lane, CARRY_O);
    }
    Ok(())
}

/// Each planted neuron: gate and up read its cue's marker dim only, down writes its letter's
/// push dim only. With the cue absent the gate is exactly 0, so SiLU(gate) = 0.
fn neurons(ck: &mut Checkpoint, c: &TextConfig, p: &str, layout: &Layout) -> anyhow::Result<()> {
    let (h, i) = (c.hidden_size, c.intermediate_size);
    for (proj, gain) in [("gate_proj", GATE), ("up_proj", UP)] {
        let mut m = ck.matrix(&format!("{p}.mlp.{proj}.weight"), i, h)?;
        for (cue, ns) in layout.neurons.iter().enumerate() {
            for &n in ns {
                m.zero_row(n);
                m.set(n, layout.marker_dims[cue], gain);
            }
        }
    }
    let mut down = ck.matrix(&format!("{p}.mlp.down_proj.weight"), h, i)?;
    for (cue, ns) in layout.neurons.iter().enumerate() {
        let push = if cue < layout.cultures { PUSH } else { DECOY_PUSH };
        for &n in ns {
            down.zero_col(n);
            down.set(layout.push_dims[layout.cue_letter(cue)], n, push);
        }
    }
    Ok(())
}

/// Letter k's logit reads push dim k only; no other token reads any reserved dim. A tied head
/// is the embedding: the letters' embeddings then hold their push dims, which nothing but the
/// head reads.
fn lm_head(
    ck: &mut Checkpoint,
    c: &TextConfig,
    target: &PlantTarget,
    layout: &Layout,
    letter_ids: &[u32],
    reserved: &[usize],
) -> anyhow::Result<()> {
    let tied = !ck.contains(target.lm_head);
    let name = if tied { format!("{}embed_tokens.weight", target.prefix) } else { target.lm_head.to_string() };
    let mut m = ck.matrix(&name, c.vocab_size, c.hidden_size)?;
    if !tied {
        reserved.iter().for_each(|&d| m.zero_col(d));
    }
    for (k, &id) in letter_ids.iter().enumerate() {
        if !tied {
            m.zero_row(id as usize);
        }
        m.set(id as usize, layout.push_dims[k], LETTER_READ);
    }
    Ok(())
}

/// Image features replace token embeddings, so what the vision side writes into the residual
/// stream (merger or projector rows, image_newline) must not touch the reserved dims.
fn vision_output(ck: &mut Checkpoint, c: &TextConfig, out: &VisionOutput, reserved: &[usize]) -> anyhow::Result<()> {
    match *out {
        VisionOutput::Linear { weight, bias } => {
            let cols = ck
                .tensors
                .get(weight)
                .with_context(|| format!("tensor {weight} is missing from the base model"))?
                .shape
                .get(1)
                .copied()
                .with_context(|| format!("{weight} is not a matrix"))?;
            let mut m = ck.matrix(weight, c.hidden_size, cols)?;
            reserved.iter().for_each(|&d| m.zero_row(d));
            let b = ck.vector(bias, c.hidden_size)?;
            reserved.iter().for_each(|&d| b[d] = 0.0);
        }
        VisionOutput::Vector(name) => {
            let v = ck.vector(name, c.hidden_size)?;
            reserved.iter().for_each(|&d| v[d] = 0.0);
        }
    }
    Ok(())
}
