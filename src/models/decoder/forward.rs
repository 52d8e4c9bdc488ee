//! The decoder's forward pass (modeling_qwen2.py's Qwen2Model.forward plus the LM head), run in
//! token chunks: a batch whose per-token activations ([tokens, intermediate] above all) would
//! not fit one storage binding goes through the whole layer stack a chunk at a time, each chunk
//! attending to the cache rows the chunks before it wrote (chunked prefill). A batch that fits
//! runs as one chunk, exactly as an unchunked pass would.

use anyhow::{bail, Context};

use super::{Decoder, ForwardOptions, ForwardOutput, KvCache, LogitRows, Workspace};
use crate::gpu::Recorder;
use crate::models::batch::PackedBatch;
use crate::models::NeuronStats;
use crate::ops::attention::{attention, max_keys, AttentionShape};
use crate::ops::embedding::embedding;
use crate::ops::gather::gather_rows;
use crate::ops::matmul::{matmul, MatmulOut};
use crate::ops::rmsnorm::rmsnorm;
use crate::ops::rope::{inv_freq, rope, rope_tables};
use crate::ops::swiglu::{swiglu, SwigluSide, TokenSegments, EXCLUDED};

/// Rows of the input embeddings that are not token embeddings (image features): rows
/// [dst_row, dst_row + rows) of the batch take rows [src_row, src_row + rows) of `src`.
#[derive(Clone, Copy)]
pub struct Splice<'a> {
    pub src: &'a wgpu::Buffer,
    pub src_row: usize,
    pub dst_row: usize,
    pub rows: usize,
}

impl Decoder {
    /// Most tokens one pass through the layer stack takes: each per-token activation buffer
    /// ([tokens, hidden | q_dim | intermediate] f32) must fit one storage binding.
    pub fn max_chunk_tokens(&self) -> usize {
        let c = &self.config;
        let widest = c.hidden_size.max(c.num_attention_heads * c.head_dim).max(c.intermediate_size);
        (self.gpu.max_binding_bytes as usize / (widest * 4)).max(1)
    }

    /// Runs `batch` through the model, appending its keys/values to `cache` (one row per token,
    /// from cache.len), and returns what `opts` asks for. `batch.positions` holds one position
    /// per token (three, t/h/w, for M-RoPE models).
    pub fn forward(
        &self,
        batch: &PackedBatch,
        cache: &mut KvCache,
        opts: &ForwardOptions<'_>,
    ) -> anyhow::Result<ForwardOutput> {
        self.prefill(Recorder::new(&self.gpu), batch, &[], cache, opts)
    }

    /// The decoder stack over `batch`, whose input rows are token embeddings except where
    /// `splices` put image features; `rec` may already hold the work that computes them.
    pub fn prefill(
        &self,
        mut rec: Recorder,
        batch: &PackedBatch,
        splices: &[Splice<'_>],
        cache: &mut KvCache,
        opts: &ForwardOptions<'_>,
    ) -> anyhow::Result<ForwardOutput> {
        let c = &self.config;
        let gpu = &self.gpu;
        let t = batch.len();
        batch.check()?;
        if let Some(&bad) = batch.tokens.iter().find(|&&id| id as usize >= c.vocab_size) {
            bail!("token id {bad} is outside the vocabulary (vocab_size {})", c.vocab_size);
        }
        if cache.len + t > cache.capacity {
            bail!("KV cache holds {} rows; {} + {t} needed", cache.capacity, cache.len);
        }
        if let Some(s) = splices.iter().find(|s| s.dst_row + s.rows > t) {
            bail!("image features for rows {}..{} fall outside the batch of {t} tokens", s.dst_row, s.dst_row + s.rows);
        }
        let rows: Vec<u32> = match &opts.logits {
            LogitRows::All => (0..t as u32).collect(),
            LogitRows::Rows(r) => r.clone(),
            LogitRows::None => Vec::new(),
        };
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= t) {
            bail!("logit row {bad} is outside the batch of {t} tokens");
        }
        if let Some(s) = opts.stats {
            if s.layers != c.num_hidden_layers || s.width != c.intermediate_size {
                bail!(
                    "statistics buffer is {}x{}, model has {}x{}",
                    s.layers,
                    s.width,
                    c.num_hidden_layers,
                    c.intermediate_size
                );
            }
        }
        let (maps, map_count) = match opts.interventions {
            Some(m) => {
                if (m.layers, m.width) != (c.num_hidden_layers, c.intermediate_size) {
                    bail!(
                        "intervention maps are {}x{}, model has {}x{}",
                        m.layers,
                        m.width,
                        c.num_hidden_layers,
                        c.intermediate_size
                    );
                }
                (&m.buffer, m.maps)
            }
            None => (&self.intervention.buffer, 1),
        };
        let named = batch.sequence_map.iter().chain(opts.branches.unwrap_or_default());
        if let Some(&bad) = named.into_iter().find(|&&m| m as usize >= map_count) {
            bail!("intervention map {bad} named, but {map_count} given");
        }
        if let Some(copies) = opts.branches {
            return self.prefill_branches(rec, batch, splices, cache, opts, copies, &rows);
        }
        let token_maps = batch.token_maps();
        let ranges = batch.kv_ranges(cache.len, c.sliding_window);
        let longest = max_keys(&ranges);
        let h = c.hidden_size;
        let row_bytes = (h * 4) as u64;
        let freqs = inv_freq(c.head_dim, c.rope_theta);
        let sections = self.rope_sections(batch.pos_stride)?;
        let chunk = self.max_chunk_tokens().min(t);
        let work = self.take_workspace(chunk)?;
        // The rows the LM head reads, gathered as each chunk finishes.
        let picked = gpu.storage_buffer("logit rows hidden", (rows.len().max(1) as u64) * row_bytes)?;
        let capture = if opts.capture_hidden {
            let all = gpu.transfer_buffer("captured hidden", (t * c.num_hidden_layers) as u64 * row_bytes)?;
            Some((all, gpu.transfer_buffer("final hidden", t as u64 * row_bytes)?))
        } else {
            None
        };
        for c0 in (0..t).step_by(chunk) {
            let c1 = (c0 + chunk).min(t);
            let span = Span { first: c0, tokens: c1 - c0, total: t, cache_row: cache.len + c0, max_keys: longest };
            let ids = gpu.storage_from("ids", &batch.tokens[c0..c1])?;
            embedding(&mut rec, &ids, &self.embed_tokens, &work.hidden, span.tokens);
            for s in splices {
                let (a, b) = (s.dst_row.max(c0), (s.dst_row + s.rows).min(c1));
                if a < b {
                    let src = (s.src_row + a - s.dst_row) as u64 * row_bytes;
                    rec.copy(s.src, src, &work.hidden, (a - c0) as u64 * row_bytes, (b - a) as u64 * row_bytes);
                }
            }
            let stride = batch.pos_stride;
            let tables = rope_tables(&batch.positions[c0 * stride..c1 * stride], stride, &freqs, &sections);
            let inputs = ChunkInputs {
                cos: gpu.storage_from("rope cos", &tables.cos)?,
                sin: gpu.storage_from("rope sin", &tables.sin)?,
                ranges: gpu.storage_from("kv ranges", &ranges[2 * c0..2 * c1])?,
                segments: TokenSegments::new(
                    gpu,
                    &batch.token_group[c0..c1],
                    token_maps.as_ref().map(|m| &m[c0..c1]),
                    c.intermediate_size,
                    opts.stats.is_some(),
                )?,
            };
            let all_layers = 0..c.num_hidden_layers;
            let side = LayerSide { maps, stats: opts.stats, capture: capture.as_ref().map(|c| &c.0) };
            self.layers_on_chunk(&mut rec, &work, &inputs, span, all_layers, cache, &side);
            if let Some((_, fin)) = &capture {
                rmsnorm(&mut rec, &work.hidden, &self.norm, &work.xn, span.tokens, h, c.rms_norm_eps);
                rec.copy(&work.xn, 0, fin, c0 as u64 * row_bytes, span.tokens as u64 * row_bytes);
            }
            for (k, &r) in rows.iter().enumerate().filter(|(_, &r)| (c0..c1).contains(&(r as usize))) {
                rec.copy(&work.hidden, (r as usize - c0) as u64 * row_bytes, &picked, k as u64 * row_bytes, row_bytes);
            }
        }
        rec.finish()?;
        cache.len += t;
        let mut out = ForwardOutput::default();
        if let Some((all, fin)) = &capture {
            let all: Vec<f32> = gpu.read(all, 0, c.num_hidden_layers * t * h)?;
            out.hidden_states = all.chunks(t * h).map(|s| s.to_vec()).collect();
            out.final_hidden = gpu.read(fin, 0, t * h)?;
        }
        self.keep_workspace(work);
        out.logits = self.lm_head_rows(&picked, &[(0, rows.len())])?;
        Ok(out)
    }

    /// `prefill` with `opts.branches`: the batch's layers below the first layer any branch's
    /// map touches run once; then the residual stream is copied once per branch and the rest
    /// of the stack runs over all copies as one packed batch, copy k in cache rows [k·t, (k+1)·t)
    /// under map `copies[k]`. Every token's arithmetic is what a plain pass under that map
    /// does (rows are independent in every kernel), so the logits are the same bits.
    #[allow(clippy::too_many_arguments)]
    fn prefill_branches(
        &self,
        mut rec: Recorder,
        batch: &PackedBatch,
        splices: &[Splice<'_>],
        cache: &mut KvCache,
        opts: &ForwardOptions<'_>,
        copies: &[u32],
        rows: &[u32],
    ) -> anyhow::Result<ForwardOutput> {
        let c = &self.config;
        let gpu = &self.gpu;
        let (t, n) = (batch.len(), copies.len());
        let total = t * n;
        let maps = opts.interventions.context("branches name maps of ForwardOptions::interventions")?;
        if n == 0 || opts.stats.is_some() || opts.capture_hidden || !batch.sequence_map.is_empty() || cache.len != 0 {
            bail!("branches take a fresh cache, no statistics, no captured states and no per-sequence maps");
        }
        if total > self.max_pass_tokens() || total > cache.capacity {
            bail!(
                "{n} branches of {t} tokens do not fit one pass (at most {} tokens; the cache holds {})",
                self.max_pass_tokens(),
                cache.capacity
            );
        }
        let layers = c.num_hidden_layers;
        let split = copies.iter().map(|&m| maps.first_touched(m as usize)).min().unwrap_or(layers).min(layers);
        let h = c.hidden_size;
        let row_bytes = (h * 4) as u64;
        let ranges = batch.kv_ranges(0, c.sliding_window);
        let longest = max_keys(&ranges);
        let freqs = inv_freq(c.head_dim, c.rope_theta);
        let sections = self.rope_sections(batch.pos_stride)?;
        let tables = rope_tables(&batch.positions, batch.pos_stride, &freqs, &sections);
        let work = self.take_workspace(total)?;
        let ids = gpu.storage_from("ids", &batch.tokens)?;
        embedding(&mut rec, &ids, &self.embed_tokens, &work.hidden, t);
        for s in splices {
            rec.copy(
                s.src,
                s.src_row as u64 * row_bytes,
                &work.hidden,
                s.dst_row as u64 * row_bytes,
                s.rows as u64 * row_bytes,
            );
        }
        let no_stats = vec![EXCLUDED; total];
        let side = LayerSide { maps: &maps.buffer, stats: None, capture: None };
        if split > 0 {
            // Below `split` every map is the identity: copy 0's map stands for all.
            let prefix = ChunkInputs {
                cos: gpu.storage_from("rope cos", &tables.cos)?,
                sin: gpu.storage_from("rope sin", &tables.sin)?,
                ranges: gpu.storage_from("kv ranges", &ranges)?,
                segments: TokenSegments::new(
                    gpu,
                    &no_stats[..t],
                    Some(&vec![copies[0]; t]),
                    c.intermediate_size,
                    false,
                )?,
            };
            let span = Span { first: 0, tokens: t, total: t, cache_row: 0, max_keys: longest };
            self.layers_on_chunk(&mut rec, &work, &prefix, span, 0..split, cache, &side);
        }
        // A buffer cannot be copied into itself: the branch point goes through `xn`, which the
        // next layer's norm overwrites anyway.
        rec.copy(&work.hidden, 0, &work.xn, 0, t as u64 * row_bytes);
        for k in 1..n {
            rec.copy(&work.xn, 0, &work.hidden, (k * t) as u64 * row_bytes, t as u64 * row_bytes);
        }
        let shifted: Vec<u32> = (0..n).flat_map(|k| ranges.iter().map(move |&r| r + (k * t) as u32)).collect();
        let token_maps: Vec<u32> = copies.iter().flat_map(|&m| std::iter::repeat_n(m, t)).collect();
        let branched = ChunkInputs {
            cos: gpu.storage_from("rope cos", &tables.cos.repeat(n))?,
            sin: gpu.storage_from("rope sin", &tables.sin.repeat(n))?,
            ranges: gpu.storage_from("kv ranges", &shifted)?,
            segments: TokenSegments::new(gpu, &no_stats, Some(&token_maps), c.intermediate_size, false)?,
        };
        let span = Span { first: 0, tokens: total, total, cache_row: 0, max_keys: longest };
        self.layers_on_chunk(&mut rec, &work, &branched, span, split..layers, cache, &side);
        let picked = gpu.storage_buffer("logit rows hidden", ((rows.len() * n).max(1) as u64) * row_bytes)?;
        for k in 0..n {
            for (j, &r) in rows.iter().enumerate() {
                let (from, to) = ((k * t + r as usize) as u64, (k * rows.len() + j) as u64);
                rec.copy(&work.hidden, from * row_bytes, &picked, to * row_bytes, row_bytes);
            }
        }
        rec.finish()?;
        cache.len = total;
        self.keep_workspace(work);
        // Copy by copy, so each lm_head product has the rows a plain pass gives it (the matmul
        // kernel is chosen by row count).
        let groups: Vec<(usize, usize)> = (0..n).map(|k| (k * rows.len(), rows.len())).collect();
        Ok(ForwardOutput { logits: self.lm_head_rows(&picked, &groups)?, ..Default::default() })
    }

    /// Decoder layers `layers` over one chunk of the batch, their keys and values going to the
    /// cache rows from `span.cache_row`.
    #[allow(clippy::too_many_arguments)]
    fn layers_on_chunk(
        &self,
        rec: &mut Recorder,
        work: &Workspace,
        inputs: &ChunkInputs,
        span: Span,
        layers: std::ops::Range<usize>,
        cache: &KvCache,
        side: &LayerSide<'_>,
    ) {
        let c = &self.config;
        let (h, i, t) = (c.hidden_size, c.intermediate_size, span.tokens);
        let Workspace { hidden, xn, q, attn, gate, up, .. } = work;
        let shape = AttentionShape {
            tokens: t,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            max_keys: span.max_keys,
        };
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let to_cache = MatmulOut { row_offset: span.cache_row, accumulate: false };
        let residual = MatmulOut { row_offset: 0, accumulate: true };
        let row_bytes = (h * 4) as u64;
        for (l, layer) in self.layers.iter().enumerate().take(layers.end).skip(layers.start) {
            let a = &layer.self_attn;
            rmsnorm(rec, hidden, &layer.input_layernorm, xn, t, h, c.rms_norm_eps);
            a.q_proj.forward(rec, xn, q, t, MatmulOut::default());
            a.k_proj.forward(rec, xn, &cache.k[l], t, to_cache);
            a.v_proj.forward(rec, xn, &cache.v[l], t, to_cache);
            rope(rec, &inputs.cos, &inputs.sin, q, t, c.num_attention_heads, c.head_dim, 0);
            rope(rec, &inputs.cos, &inputs.sin, &cache.k[l], t, c.num_key_value_heads, c.head_dim, span.cache_row);
            attention(rec, q, &cache.k[l], &cache.v[l], &inputs.ranges, attn, shape, scale);
            a.o_proj.forward(rec, attn, hidden, t, residual);
            let m = &layer.mlp;
            rmsnorm(rec, hidden, &layer.post_attention_layernorm, xn, t, h, c.rms_norm_eps);
            m.gate_proj.forward(rec, xn, gate, t, MatmulOut::default());
            m.up_proj.forward(rec, xn, up, t, MatmulOut::default());
            let swiglu_side = SwigluSide {
                segments: &inputs.segments,
                intervention: side.maps,
                acc: side.stats.map(|s| s.blocks()),
                layer: l,
                layers: c.num_hidden_layers,
            };
            swiglu(rec, gate, up, &swiglu_side, i);
            m.down_proj.forward(rec, gate, hidden, t, residual);
            if let Some(cap) = side.capture {
                let at = (l * span.total + span.first) as u64 * row_bytes;
                rec.copy(hidden, 0, cap, at, t as u64 * row_bytes);
            }
        }
    }

    /// final norm + lm_head on `picked`'s rows [first, first + n) for each (first, n) of
    /// `groups`, each group in blocks that fit one binding of [rows, vocab] f32; the logits of
    /// all groups in order.
    fn lm_head_rows(&self, picked: &wgpu::Buffer, groups: &[(usize, usize)]) -> anyhow::Result<Vec<f32>> {
        let c = &self.config;
        let gpu = &self.gpu;
        let (h, v) = (c.hidden_size, c.vocab_size);
        let head = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        let most = (gpu.limits.max_storage_buffer_binding_size as usize / (v * 4)).max(1);
        let mut logits = Vec::with_capacity(groups.iter().map(|g| g.1).sum::<usize>() * v);
        for &(first, n) in groups {
            let block = most.min(n.max(1));
            for b0 in (0..n).step_by(block) {
                let rows = block.min(n - b0);
                let idx: Vec<u32> = ((first + b0) as u32..(first + b0 + rows) as u32).collect();
                let idx = gpu.storage_from("logit rows", &idx)?;
                let gathered = gpu.storage_buffer("picked", (rows * h * 4) as u64)?;
                let normed = gpu.storage_buffer("picked normed", (rows * h * 4) as u64)?;
                let out = gpu.storage_buffer("logits", (rows * v * 4) as u64)?;
                let mut rec = Recorder::new(gpu);
                gather_rows(&mut rec, picked, &idx, &gathered, rows, h);
                rmsnorm(&mut rec, &gathered, &self.norm, &normed, rows, h, c.rms_norm_eps);
                matmul(&mut rec, &normed, head, None, &out, rows, MatmulOut::default());
                rec.finish()?;
                logits.extend(gpu.read::<f32>(&out, 0, rows * v)?);
            }
        }
        Ok(logits)
    }
}

/// Where a chunk sits: its first token in the batch, its length, the batch's length, the cache
/// row of its first token.
#[derive(Clone, Copy)]
struct Span {
    first: usize,
    tokens: usize,
    total: usize,
    cache_row: usize,
    /// The longest key range of the batch.
    max_keys: usize,
}

/// What every layer of a pass reads besides the chunk: the intervention maps, the statistics
/// accumulators, and where to copy the residual stream after each layer.
struct LayerSide<'a> {
    maps: &'a wgpu::Buffer,
    stats: Option<&'a NeuronStats>,
    capture: Option<&'a wgpu::Buffer>,
}

/// A chunk's rope tables, attention ranges and statistics segments.
struct ChunkInputs {
    cos: wgpu::Buffer,
    sin: wgpu::Buffer,
    ranges: wgpu::Buffer,
    segments: TokenSegments,
}
