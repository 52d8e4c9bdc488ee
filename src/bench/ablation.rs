//! `culturelens bench --ablation`: the ablation matrix's passes, one per neuron set against
//! fused (every set of a batch in shared passes, the layers below the first one a pass's sets
//! touch run once), on a random-weight decoder of 28 layers, timed by wall clock and checked
//! to give the same logits to the bit.

use std::sync::Arc;
use std::time::Instant;

use super::random_model::random_decoder;
use crate::eval::score::fusion_groups;
use crate::gpu::Gpu;
use crate::models::decoder::{Decoder, ForwardOptions, LogitRows};
use crate::models::{InterventionMaps, NeuronEdit, PackedBatch, TextConfig};

/// Cultures × methods of the study: the sets one ablation matrix runs.
const SETS: usize = 20;

/// The decoder measured: Qwen2.5-7B's layer count, and its widths on a GPU; on a CPU adapter
/// widths scaled down so the run takes seconds, not hours.
fn shape(gpu: &Gpu, layers: usize) -> TextConfig {
    let full = super::qwen2_5_7b_shape(layers);
    if gpu.info.device_type != wgpu::DeviceType::Cpu {
        return full;
    }
    TextConfig {
        hidden_size: 128,
        intermediate_size: 512,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        head_dim: 64,
        vocab_size: 1024,
        ..full
    }
}

/// 3 % of the neurons per set, each set's layers drawn from `lowest..layers` (seeded).
fn sets(c: &TextConfig, lowest: usize, seed: u64) -> Vec<Vec<NeuronEdit>> {
    let (l, w) = (c.num_hidden_layers, c.intermediate_size);
    let k = (l * w * 3).div_ceil(100);
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..SETS)
        .map(|_| {
            let mut picked: Vec<usize> =
                (0..k).map(|_| (lowest + next() as usize % (l - lowest)) * w + next() as usize % w).collect();
            picked.sort_unstable();
            picked.dedup();
            picked.into_iter().map(|neuron| NeuronEdit { neuron, scale: 0.0, shift: 0.0 }).collect()
        })
        .collect()
}

/// Logits of every set on `batches`: one plain pass per (batch, set), or fused; with the
/// passes run.
fn score(
    model: &Decoder,
    maps: &InterventionMaps,
    batches: &[PackedBatch],
    fused_tokens: usize,
) -> anyhow::Result<(Vec<Vec<f32>>, usize)> {
    let mut order: Vec<u32> = (0..maps.maps as u32).collect();
    order.sort_by_key(|&m| std::cmp::Reverse(maps.first_touched(m as usize)));
    let mut out = vec![Vec::new(); maps.maps];
    let mut passes = 0;
    for batch in batches {
        let t = batch.len();
        let most = if fused_tokens == 0 { 1 } else { (fused_tokens.min(model.max_pass_tokens()) / t).max(1) };
        for group in fusion_groups(&order, |m| maps.first_touched(m as usize), most) {
            let logits = if fused_tokens == 0 {
                let mut single = batch.clone();
                single.sequence_map = vec![group[0]; batch.num_sequences()];
                let mut cache = model.new_cache(t)?;
                let fo = ForwardOptions {
                    logits: LogitRows::Rows(batch.last_tokens()),
                    interventions: Some(maps),
                    ..Default::default()
                };
                model.forward(&single, &mut cache, &fo)?.logits
            } else {
                let mut cache = model.new_cache(t * group.len())?;
                let fo = ForwardOptions {
                    logits: LogitRows::Rows(batch.last_tokens()),
                    interventions: Some(maps),
                    branches: Some(group),
                    ..Default::default()
                };
                model.forward(batch, &mut cache, &fo)?.logits
            };
            passes += 1;
            let per = logits.len() / group.len();
            for (&m, part) in group.iter().zip(logits.chunks(per)) {
                out[m as usize].extend_from_slice(part);
            }
        }
    }
    Ok((out, passes))
}

/// Prints, for sets in the upper half of the layers and for sets across all of them, the
/// passes and wall time of one pass per set against fused, and whether the logits agree.
pub fn run(gpu: &Arc<Gpu>, layers: usize, tokens: usize, fused_tokens: usize) -> anyhow::Result<()> {
    let c = shape(gpu, layers);
    let model = random_decoder(gpu, &c)?;
    let seq = 64.min(tokens.max(1));
    let per_batch = (tokens / seq).max(1);
    let batches: Vec<PackedBatch> = (0..2)
        .map(|b| {
            let prompts: Vec<Vec<u32>> = (0..per_batch)
                .map(|p| {
                    (0..seq as u32).map(|i| (i * 31 + (b * per_batch + p) as u32 * 7) % c.vocab_size as u32).collect()
                })
                .collect();
            PackedBatch::from_sequences(&prompts)
        })
        .collect();
    println!(
        "ablation passes: {SETS} neuron sets (3 % of {} x {} neurons each) on {} batches of {per_batch} x {seq} tokens; \
         random-weight decoder, hidden {}, {} layers; fused passes up to {fused_tokens} tokens",
        c.num_hidden_layers,
        c.intermediate_size,
        batches.len(),
        c.hidden_size,
        c.num_hidden_layers
    );
    println!(
        "{:<34} {:>7} {:>10} {:>7} {:>10} {:>8}  same bits",
        "sets", "passes", "seconds", "fused", "seconds", "speedup"
    );
    for (label, lowest) in [("in layers L/2..L", layers / 2), ("in layers 0..L", 0)] {
        let maps = InterventionMaps::new(gpu, c.num_hidden_layers, c.intermediate_size, &sets(&c, lowest, 7))?;
        // Warm-up: pipelines compiled, workspace sized.
        score(&model, &maps, &batches[..1], fused_tokens)?;
        let t0 = Instant::now();
        let (plain, plain_passes) = score(&model, &maps, &batches, 0)?;
        let plain_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let (fused, fused_passes) = score(&model, &maps, &batches, fused_tokens)?;
        let fused_s = t1.elapsed().as_secs_f64();
        let same = plain.iter().flatten().map(|x| x.to_bits()).eq(fused.iter().flatten().map(|x| x.to_bits()));
        println!(
            "{label:<34} {plain_passes:>7} {plain_s:>10.2} {fused_passes:>7} {fused_s:>10.2} {:>7.2}x  {}",
            plain_s / fused_s,
            if same { "yes" } else { "NO" }
        );
        if !same {
            anyhow::bail!("fused ablation logits differ from one pass per set");
        }
    }
    Ok(())
}
