//! `collect`: per-culture statistics of every LM neuron over a data set, in chunks that are the
//! unit of batching, checkpointing and sharding. Each chunk's GPU accumulators are read back and
//! added exactly (neurons::accum), so a resumed run, or shards merged afterwards, end with the
//! same bits as one uninterrupted run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::data::{group_by_name, lang_name, DataOptions, Selected};
use super::model::{options_per_row, CultureModel};
use crate::eval::mc::PositionRule;
use crate::gpu::Gpu;
use crate::models::NeuronStats;
use crate::neurons::accum::Accumulated;
use crate::neurons::stats_file::{StatsFile, StatsMeta, FORMAT};

pub struct CollectOptions {
    pub model: String,
    pub data: DataOptions,
    pub rule: PositionRule,
    pub out: PathBuf,
    /// Rows per chunk: checkpoints fall on chunk boundaries.
    pub chunk_examples: usize,
    /// Seconds at least between two checkpoint writes: at 7B with many cultures the file is
    /// hundreds of MB, too much to rewrite after every chunk.
    pub min_checkpoint_seconds: f64,
    pub max_batch_tokens: usize,
    /// (index, count).
    pub shard: (usize, usize),
    /// How positions weigh in μ and p.
    pub weighting: Weighting,
    pub progress: bool,
}

/// What weighs the same in a culture's μ and p.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weighting {
    /// Every counted position: long prompts and large images weigh more.
    #[default]
    Token,
    /// Every question: each example's mean first, then the mean over examples.
    Example,
}

impl Weighting {
    pub fn name(self) -> &'static str {
        match self {
            Weighting::Token => "token",
            Weighting::Example => "example",
        }
    }
}

pub fn rule_name(r: PositionRule) -> &'static str {
    match r {
        PositionRule::All => "all",
        PositionRule::Text => "text",
        PositionRule::Image => "image",
        PositionRule::Last => "last",
    }
}

/// Default seconds between checkpoint writes.
pub const MIN_CHECKPOINT_SECONDS: f64 = 30.0;

/// `stats.safetensors`, or `stats.shard-I-of-N.safetensors` for a shard.
pub fn stats_path(out: &Path, shard: (usize, usize)) -> PathBuf {
    if shard.1 == 1 {
        out.join("stats.safetensors")
    } else {
        out.join(format!("stats.shard-{}-of-{}.safetensors", shard.0, shard.1))
    }
}

fn partial_path(path: &Path) -> PathBuf {
    path.with_extension("partial.safetensors")
}

/// Runs (or resumes, or finds already complete) a collection; returns the statistics file.
pub fn collect(gpu: &Arc<Gpu>, o: &CollectOptions) -> anyhow::Result<PathBuf> {
    let sel = o.data.load()?;
    let model = CultureModel::load_with(gpu, &o.model, options_per_row(&sel.grouped.examples), &o.data.inputs)?;
    collect_loaded(gpu, &model, &sel, o)
}

/// `collect` with the model and rows already loaded.
pub fn collect_loaded(
    gpu: &Arc<Gpu>,
    model: &CultureModel,
    sel: &Selected,
    o: &CollectOptions,
) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(o.chunk_examples > 0, "--checkpoint-every must be at least 1");
    let examples = &sel.grouped.examples;
    let meta = StatsMeta {
        format: FORMAT,
        culturelens_version: env!("CARGO_PKG_VERSION").to_string(),
        model: o.model.clone(),
        model_fingerprint: model.fingerprint.clone(),
        architecture: model.architecture().to_string(),
        layers: model.layers(),
        width: model.width(),
        dataset: o.data.data.clone(),
        dataset_fingerprint: sel.fingerprint.clone(),
        group_by: group_by_name(o.data.group_by).to_string(),
        lang: lang_name(o.data.lang).to_string(),
        position_rule: rule_name(o.rule).to_string(),
        option_token_ids: model.option_ids.clone(),
        split: o.data.split.clone(),
        image_budget: model.vlm.pixel_bounds(),
        prompt_format: model.prompt.describe(),
        precision: gpu.precision.name().to_string(),
        weighting: o.weighting.name().to_string(),
        groups: sel.grouped.names.clone(),
        examples_per_group: sel.grouped.counts(),
        examples: examples.len(),
        chunk_examples: o.chunk_examples,
        max_batch_tokens: o.max_batch_tokens,
        shard: o.shard,
        chunks_done: 0,
        complete: false,
    };
    for (name, n) in &sel.grouped.skipped {
        eprintln!("skipped group {name}: {n} rows, fewer than --min-per-group {}", o.data.min_per_group);
    }
    let path = stats_path(&o.out, o.shard);
    let partial = partial_path(&path);
    if path.is_file() {
        let done = StatsFile::load(&path)?;
        if done.meta.same_run(&meta) && done.meta.complete {
            eprintln!("{}: already complete for this model, data and settings", path.display());
            return Ok(path);
        }
        anyhow::bail!(
            "{} holds statistics of a different run (model, data or settings differ); choose another --out or remove it",
            path.display()
        );
    }
    let mut state = if partial.is_file() {
        let s = StatsFile::load(&partial)?;
        if !s.meta.same_run(&meta) {
            anyhow::bail!(
                "{} is a checkpoint of a different run (model, data or settings differ); choose another --out or remove it",
                partial.display()
            );
        }
        eprintln!("resuming from {} ({} chunks done)", partial.display(), s.meta.chunks_done);
        s
    } else {
        let acc = match o.weighting {
            Weighting::Token => Accumulated::zeros(meta.groups.len(), meta.layers, meta.width),
            Weighting::Example => Accumulated::zeros_weighted(meta.groups.len(), meta.layers, meta.width),
        };
        StatsFile { meta, acc, example_index: Vec::new(), option_logits: Vec::new() }
    };

    let chunks = state.meta.shard_chunks();
    let chunk_rows = |c: usize| c * o.chunk_examples..((c + 1) * o.chunk_examples).min(examples.len());
    let total_rows: usize = chunks.iter().map(|&c| chunk_rows(c).len()).sum();
    let done_rows: usize = chunks[..state.meta.chunks_done].iter().map(|&c| chunk_rows(c).len()).sum();
    // Every row this run will take is prepared once now (image decoded and processed, prompt
    // built and measured) so a bad row fails here, not hours in; the pixels are not kept.
    let mut longest = 0;
    for &c in &chunks[state.meta.chunks_done..] {
        for r in chunk_rows(c) {
            longest = longest.max(model.prepare(&examples[r..r + 1])?[0].ids.len());
        }
    }
    model.check_batch_capacity(longest, o.chunk_examples, o.max_batch_tokens)?;
    let bar = progress_bar(o.progress, total_rows as u64, done_rows as u64);
    // Example weighting gives each row of a batch its own slot instead, sized per chunk.
    let stats = NeuronStats::new(gpu, state.meta.groups.len(), state.meta.layers, state.meta.width)?;
    gpu.memory.start();
    let started = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut tokens = 0u64;
    for &c in &chunks[state.meta.chunks_done..] {
        let rows = chunk_rows(c);
        let base = bar.position();
        let g_n = state.meta.groups.len();
        match o.weighting {
            Weighting::Token => {
                stats.reset();
                let scored =
                    model.score(&examples[rows.clone()], Some(&stats), o.rule, o.max_batch_tokens, |k, _| {
                        bar.set_position(base + k as u64);
                    })?;
                let [positions, tokens_run, image_tokens] = scored.counts_padded(g_n);
                state.acc.add_words(&stats.read_words()?, &positions)?;
                state.acc.add_tokens(&tokens_run, &image_tokens)?;
                tokens += scored.total_tokens();
                state.option_logits.extend(scored.option_logits);
            }
            Weighting::Example => {
                let chunk = &examples[rows.clone()];
                let prepared = model.prepare(chunk)?;
                let slots = CultureModel::slots_for(&prepared, o.max_batch_tokens);
                let slots = NeuronStats::new(gpu, slots, state.meta.layers, state.meta.width)?;
                model.score_per_example(&prepared, &slots, o.rule, o.max_batch_tokens, |batch, scored, words| {
                    let slot_group: Vec<usize> = batch.clone().map(|r| chunk[r].0).collect();
                    let [positions, tokens_run, image_tokens] = scored.counts_padded(batch.len());
                    state.acc.add_example_words(words, &slot_group, &positions)?;
                    let mut by_group = [vec![0u64; g_n], vec![0u64; g_n]];
                    for (s, &g) in slot_group.iter().enumerate() {
                        by_group[0][g] += tokens_run[s];
                        by_group[1][g] += image_tokens[s];
                    }
                    state.acc.add_tokens(&by_group[0], &by_group[1])?;
                    tokens += scored.total_tokens();
                    state.option_logits.extend(scored.option_logits);
                    bar.set_position(base + batch.end as u64);
                    Ok(())
                })?;
            }
        }
        state.example_index.extend(rows.map(|r| r as u64));
        state.meta.chunks_done += 1;
        bar.set_message(format!("{:.0} tok/s", tokens as f64 / started.elapsed().as_secs_f64().max(1e-9)));
        if last_checkpoint.elapsed().as_secs_f64() >= o.min_checkpoint_seconds {
            state.save(&partial)?;
            last_checkpoint = Instant::now();
        }
    }
    bar.finish_and_clear();
    let memory = gpu
        .memory
        .peak(&gpu.device)
        .map_or(String::new(), |b| format!("; device memory peak {:.2} GiB", b as f64 / (1u64 << 30) as f64));
    eprintln!(
        "collected {total_rows} rows ({tokens} prompt tokens this run, longest prompt {longest}) in {:.1} s{memory}",
        started.elapsed().as_secs_f64()
    );
    state.meta.complete = true;
    state.save(&path)?;
    let _ = std::fs::remove_file(&partial);
    let _ = std::fs::remove_file(super::super::neurons::stats_file::json_path(&partial));
    Ok(path)
}

pub(crate) fn progress_bar(show: bool, len: u64, pos: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if show { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} examples  {per_sec}  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(pos);
    bar.reset_eta();
    bar
}

/// `merge`: adds complete shards of one run into the single-run statistics.
pub fn merge(shards: &[PathBuf], out: &Path) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(!shards.is_empty(), "merge needs at least one shard file");
    let files: Vec<StatsFile> = shards.iter().map(|p| StatsFile::load(p)).collect::<anyhow::Result<_>>()?;
    let first = &files[0].meta;
    let n = first.shard.1;
    let mut seen = vec![false; n];
    for (f, p) in files.iter().zip(shards) {
        if !f.meta.complete {
            anyhow::bail!("{}: shard is not complete (resume its collect first)", p.display());
        }
        if f.meta.shard.1 != n || !f.meta.same_run(&StatsMeta { shard: f.meta.shard, ..first.clone() }) {
            anyhow::bail!("{}: not a shard of the same run as {}", p.display(), shards[0].display());
        }
        if std::mem::replace(&mut seen[f.meta.shard.0], true) {
            anyhow::bail!("{}: shard {}/{n} given twice", p.display(), f.meta.shard.0);
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        anyhow::bail!("shard {missing}/{n} is missing from the merge");
    }
    let mut acc = Accumulated::zeros(first.groups.len(), first.layers, first.width);
    let mut rows: Vec<(u64, Vec<f32>)> = Vec::new();
    for f in &files {
        acc.merge(&f.acc)?;
        rows.extend(f.example_index.iter().copied().zip(f.option_logits.iter().cloned()));
    }
    rows.sort_by_key(|r| r.0);
    let meta = StatsMeta { shard: (0, 1), chunks_done: first.chunks_total(), complete: true, ..first.clone() };
    let merged = StatsFile {
        meta,
        acc,
        example_index: rows.iter().map(|r| r.0).collect(),
        option_logits: rows.into_iter().map(|r| r.1).collect(),
    };
    let path = stats_path(out, (0, 1));
    merged.save(&path)?;
    Ok(path)
}
