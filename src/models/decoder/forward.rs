//! The decoder's forward pass (modeling_qwen2.py's Qwen2Model.forward plus the LM head), run in
//! token chunks: a batch whose per-token activations ([tokens, intermediate] above all) would
//! not fit one storage binding goes through the whole layer stack a chunk at a time, each chunk
//! attending to the cache rows the chunks before it wrote (chunked prefill). A batch that fits
//! runs as one chunk, exactly as an unchunked pass would.

use anyhow::bail;

use super::{Decoder, ForwardOptions, ForwardOutput, KvCache, LogitRows, Workspace};
use crate::gpu::Recorder;
use crate::models::batch::PackedBatch;
use crate::ops::attention::{attention, max_keys, AttentionShape};
use crate::ops::embedding::embedding;
use crate::ops::gather::gather_rows;
use crate::ops::matmul::{matmul, MatmulOut};
use crate::ops::rmsnorm::rmsnorm;
use crate::ops::rope::{inv_freq, rope, rope_tables};
use crate::ops::swiglu::{swiglu, SwigluSide, TokenSegments};

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
                    c.intermediate_size,
                    opts.stats.is_some(),
                )?,
            };
            self.layers_on_chunk(&mut rec, &work, &inputs, span, cache, opts, capture.as_ref().map(|c| &c.0));
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
        out.logits = self.lm_head_rows(&picked, rows.len())?;
        Ok(out)
    }

    /// Every decoder layer over one chunk of the batch, its keys and values going to the cache
    /// rows from `span.cache_row`.
    #[allow(clippy::too_many_arguments)]
    fn layers_on_chunk(
        &self,
        rec: &mut Recorder,
        work: &Workspace,
        inputs: &ChunkInputs,
        span: Span,
        cache: &KvCache,
        opts: &ForwardOptions<'_>,
        capture: Option<&wgpu::Buffer>,
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
        for (l, layer) in self.layers.iter().enumerate() {
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
            let side = SwigluSide {
                segments: &inputs.segments,
                intervention: &self.intervention.buffer,
                acc: opts.stats.map(|s| s.blocks()),
                layer: l,
                layers: c.num_hidden_layers,
            };
            swiglu(rec, gate, up, &side, i);
            m.down_proj.forward(rec, gate, hidden, t, residual);
            if let Some(cap) = capture {
                let at = (l * span.total + span.first) as u64 * row_bytes;
                rec.copy(hidden, 0, cap, at, t as u64 * row_bytes);
            }
        }
    }

    /// final norm + lm_head on the first `n` rows of `picked`, in blocks that fit one binding of
    /// [rows, vocab] f32.
    fn lm_head_rows(&self, picked: &wgpu::Buffer, n: usize) -> anyhow::Result<Vec<f32>> {
        let c = &self.config;
        let gpu = &self.gpu;
        let (h, v) = (c.hidden_size, c.vocab_size);
        let head = self.lm_head.as_ref().unwrap_or(&self.embed_tokens);
        let block = ((gpu.limits.max_storage_buffer_binding_size as usize / (v * 4)).max(1)).min(n.max(1));
        let mut logits = Vec::with_capacity(n * v);
        for b0 in (0..n).step_by(block) {
            let rows = block.min(n - b0);
            let idx: Vec<u32> = (b0 as u32..(b0 + rows) as u32).collect();
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

/// A chunk's rope tables, attention ranges and statistics segments.
struct ChunkInputs {
    cos: wgpu::Buffer,
    sin: wgpu::Buffer,
    ranges: wgpu::Buffer,
    segments: TokenSegments,
}
