//! Qwen2ForCausalLM / MistralForCausalLM (modeling_qwen2.py, modeling_mistral.py): the two share
//! one decoder; they differ only in the q/k/v bias and Mistral's optional sliding window. The
//! forward pass itself is in `forward`.

mod forward;

pub use forward::Splice;

use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};

use super::config::TextConfig;
use super::stats::{Intervention, InterventionMaps, NeuronStats};
use crate::gpu::{Gpu, Recorder, WeightTensor};
use crate::ops::matmul::{matmul, MatmulOut};
use crate::weights::WeightStore;

/// nn.Linear: weight [out, in] resident in its checkpoint dtype, bias widened to f32.
pub struct Linear {
    pub weight: WeightTensor,
    pub bias: Option<wgpu::Buffer>,
}

impl Linear {
    /// Rows [first, first + rows) of `{name}.weight` (and its bias): HF packs q, k and v of the
    /// vision attention in one `qkv` Linear; each third becomes its own Linear here.
    pub fn load_rows(
        gpu: &Arc<Gpu>,
        store: &WeightStore,
        name: &str,
        total_rows: usize,
        first: usize,
        rows: usize,
        cols: usize,
    ) -> anyhow::Result<Linear> {
        let wname = format!("{name}.weight");
        let t = store.get_shaped(&wname, &[total_rows, cols])?;
        let dtype = t.weight_dtype()?;
        let row_bytes = cols * dtype.size();
        let bytes = &t.bytes[first * row_bytes..(first + rows) * row_bytes];
        let weight = WeightTensor::upload(gpu, &wname, dtype, rows, cols, bytes)?;
        let bname = format!("{name}.bias");
        let bias = store.get_shaped(&bname, &[total_rows])?.to_f32()?;
        Ok(Linear { weight, bias: Some(gpu.storage_from(&bname, &bias[first..first + rows])?) })
    }

    pub fn load(
        gpu: &Arc<Gpu>,
        store: &WeightStore,
        name: &str,
        out: usize,
        inp: usize,
        bias: bool,
    ) -> anyhow::Result<Linear> {
        let weight = load_matrix(gpu, store, &format!("{name}.weight"), out, inp)?;
        let bias = if bias { Some(load_vector(gpu, store, &format!("{name}.bias"), out)?) } else { None };
        Ok(Linear { weight, bias })
    }

    pub fn forward(&self, rec: &mut Recorder, x: &wgpu::Buffer, y: &wgpu::Buffer, rows: usize, out: MatmulOut) {
        matmul(rec, x, &self.weight, self.bias.as_ref(), y, rows, out);
    }
}

pub fn load_matrix(
    gpu: &Arc<Gpu>,
    store: &WeightStore,
    name: &str,
    rows: usize,
    cols: usize,
) -> anyhow::Result<WeightTensor> {
    let t = store.get_shaped(name, &[rows, cols])?;
    WeightTensor::upload(gpu, name, t.weight_dtype()?, rows, cols, t.bytes).with_context(|| format!("uploading {name}"))
}

pub fn load_vector(gpu: &Arc<Gpu>, store: &WeightStore, name: &str, len: usize) -> anyhow::Result<wgpu::Buffer> {
    let t = store.get_shaped(name, &[len])?;
    Ok(gpu.storage_from(name, &t.to_f32()?)?)
}

pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
}

pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

pub struct DecoderLayer {
    pub self_attn: Attention,
    pub mlp: Mlp,
    pub input_layernorm: wgpu::Buffer,
    pub post_attention_layernorm: wgpu::Buffer,
}

/// Keys and values of every layer for `capacity` token rows.
pub struct KvCache {
    pub k: Vec<wgpu::Buffer>,
    pub v: Vec<wgpu::Buffer>,
    pub capacity: usize,
    /// Rows filled so far; the next forward writes from here.
    pub len: usize,
}

/// Which positions get logits.
#[derive(Debug, Clone, Default)]
pub enum LogitRows {
    #[default]
    All,
    Rows(Vec<u32>),
    None,
}

#[derive(Default)]
pub struct ForwardOptions<'a> {
    pub logits: LogitRows,
    /// Read back the residual stream after every layer and after the final norm.
    pub capture_hidden: bool,
    pub stats: Option<&'a NeuronStats>,
    /// The maps the batch's sequences (`PackedBatch::sequence_map`) or `branches` name; None:
    /// the decoder's own single map (`Decoder::intervention`).
    pub interventions: Option<&'a InterventionMaps>,
    /// Runs the whole batch once per listed map, in one pass: the layers below the first one
    /// any of these maps touches run once, and the residual stream then branches into one copy
    /// of the batch per map. Logits come back copy by copy ([copies][rows][vocab]).
    pub branches: Option<&'a [u32]>,
}

#[derive(Debug, Default)]
pub struct ForwardOutput {
    /// [rows, vocab] for the requested rows, in request order.
    pub logits: Vec<f32>,
    pub hidden_states: Vec<Vec<f32>>,
    pub final_hidden: Vec<f32>,
}

pub struct Decoder {
    pub config: TextConfig,
    pub embed_tokens: WeightTensor,
    pub layers: Vec<DecoderLayer>,
    pub norm: wgpu::Buffer,
    /// None when the embedding is tied.
    pub lm_head: Option<WeightTensor>,
    pub intervention: Intervention,
    gpu: Arc<Gpu>,
    /// Activation buffers kept from the last forward and reused while they are big enough:
    /// a statistics or ablation run makes thousands of forwards of similar size.
    workspace: Mutex<Option<Workspace>>,
}

/// The per-layer activation buffers of a forward pass over up to `tokens` tokens.
struct Workspace {
    tokens: usize,
    hidden: wgpu::Buffer,
    xn: wgpu::Buffer,
    q: wgpu::Buffer,
    attn: wgpu::Buffer,
    gate: wgpu::Buffer,
    up: wgpu::Buffer,
}

impl Decoder {
    /// Loads `{prefix}embed_tokens`, `{prefix}layers.*`, `{prefix}norm` and `lm_head_name`
    /// (prefix "model." for the CausalLM classes).
    pub fn load(
        gpu: &Arc<Gpu>,
        store: &WeightStore,
        config: &TextConfig,
        prefix: &str,
        lm_head_name: &str,
    ) -> anyhow::Result<Decoder> {
        let c = config;
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let (q_dim, kv_dim) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        let embed_tokens = load_matrix(gpu, store, &format!("{prefix}embed_tokens.weight"), c.vocab_size, h)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = format!("{prefix}layers.{l}");
            layers.push(DecoderLayer {
                self_attn: Attention {
                    q_proj: Linear::load(gpu, store, &format!("{p}.self_attn.q_proj"), q_dim, h, c.qkv_bias)?,
                    k_proj: Linear::load(gpu, store, &format!("{p}.self_attn.k_proj"), kv_dim, h, c.qkv_bias)?,
                    v_proj: Linear::load(gpu, store, &format!("{p}.self_attn.v_proj"), kv_dim, h, c.qkv_bias)?,
                    o_proj: Linear::load(gpu, store, &format!("{p}.self_attn.o_proj"), h, q_dim, false)?,
                },
                mlp: Mlp {
                    gate_proj: Linear::load(gpu, store, &format!("{p}.mlp.gate_proj"), i, h, false)?,
                    up_proj: Linear::load(gpu, store, &format!("{p}.mlp.up_proj"), i, h, false)?,
                    down_proj: Linear::load(gpu, store, &format!("{p}.mlp.down_proj"), h, i, false)?,
                },
                input_layernorm: load_vector(gpu, store, &format!("{p}.input_layernorm.weight"), h)?,
                post_attention_layernorm: load_vector(gpu, store, &format!("{p}.post_attention_layernorm.weight"), h)?,
            });
        }
        let norm = load_vector(gpu, store, &format!("{prefix}norm.weight"), h)?;
        let lm_head = if c.tie_word_embeddings && !store.contains(lm_head_name) {
            None
        } else {
            Some(load_matrix(gpu, store, lm_head_name, c.vocab_size, h)?)
        };
        Ok(Decoder {
            config: c.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            intervention: Intervention::identity(gpu, c.num_hidden_layers, i)?,
            gpu: gpu.clone(),
            workspace: Mutex::new(None),
        })
    }

    /// Assembles a decoder from weights already on the GPU (benchmarks build random ones).
    pub fn from_parts(
        gpu: &Arc<Gpu>,
        config: &TextConfig,
        embed_tokens: WeightTensor,
        layers: Vec<DecoderLayer>,
        norm: wgpu::Buffer,
        lm_head: Option<WeightTensor>,
    ) -> anyhow::Result<Decoder> {
        Ok(Decoder {
            intervention: Intervention::identity(gpu, config.num_hidden_layers, config.intermediate_size)?,
            config: config.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            gpu: gpu.clone(),
            workspace: Mutex::new(None),
        })
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Buffers for a forward of `t` tokens: the kept ones when they suffice, else new ones.
    /// The forward owns them until it hands them back with `keep_workspace`, so forwards on
    /// other threads meanwhile get their own.
    fn take_workspace(&self, t: usize) -> anyhow::Result<Workspace> {
        let mut kept = self.workspace.lock().expect("decoder workspace poisoned");
        if let Some(w) = kept.take().filter(|w| w.tokens >= t) {
            return Ok(w);
        }
        let c = &self.config;
        let f = |n: usize| (t * n * 4) as u64;
        let q_dim = c.num_attention_heads * c.head_dim;
        let w = Workspace {
            tokens: t,
            hidden: self.gpu.storage_buffer("hidden", f(c.hidden_size))?,
            xn: self.gpu.storage_buffer("normed", f(c.hidden_size))?,
            q: self.gpu.storage_buffer("q", f(q_dim))?,
            attn: self.gpu.storage_buffer("attn", f(q_dim))?,
            gate: self.gpu.storage_buffer("gate", f(c.intermediate_size))?,
            up: self.gpu.storage_buffer("up", f(c.intermediate_size))?,
        };
        Ok(w)
    }

    fn keep_workspace(&self, w: Workspace) {
        let mut kept = self.workspace.lock().expect("decoder workspace poisoned");
        if kept.as_ref().is_none_or(|k| k.tokens < w.tokens) {
            *kept = Some(w);
        }
    }

    /// Keys and values for `capacity` token rows. Attention reads a layer's cache through one
    /// binding, so that is the longest a prompt (or a packed batch) can be on this adapter.
    pub fn new_cache(&self, capacity: usize) -> anyhow::Result<KvCache> {
        self.check_cache_capacity(capacity)?;
        let c = &self.config;
        let bytes = (capacity * c.num_key_value_heads * c.head_dim * 4) as u64;
        let mut k = Vec::new();
        let mut v = Vec::new();
        for l in 0..c.num_hidden_layers {
            k.push(self.gpu.storage_buffer(&format!("k cache {l}"), bytes)?);
            v.push(self.gpu.storage_buffer(&format!("v cache {l}"), bytes)?);
        }
        Ok(KvCache { k, v, capacity, len: 0 })
    }

    /// Most tokens one unchunked pass takes: its activations and its KV cache rows each fit a
    /// binding.
    pub fn max_pass_tokens(&self) -> usize {
        let c = &self.config;
        let row = (c.num_key_value_heads * c.head_dim * 4) as u64;
        let cache_rows = (self.gpu.limits.max_storage_buffer_binding_size / row.max(1)) as usize;
        self.max_chunk_tokens().min(cache_rows)
    }

    /// Whether a KV cache of `capacity` rows fits one binding per layer (callers check before a
    /// long run; `new_cache` checks again).
    pub fn check_cache_capacity(&self, capacity: usize) -> anyhow::Result<()> {
        let c = &self.config;
        let row = (c.num_key_value_heads * c.head_dim * 4) as u64;
        let bytes = capacity as u64 * row;
        let limit = self.gpu.limits.max_storage_buffer_binding_size;
        if bytes > limit {
            bail!(
                "{capacity} tokens need a KV cache of {bytes} bytes per layer, past this adapter's binding \
                 limit of {limit} bytes: a prompt or packed batch holds at most {} tokens here (lower \
                 --batch-tokens, or the image budget with --max-pixels)",
                limit / row
            );
        }
        Ok(())
    }

    /// Which of a token's positions drives each rotary frequency: plain RoPE uses the one
    /// position; M-RoPE (Qwen2.5-VL) gives the first mrope_section[0] frequencies to t, the next
    /// mrope_section[1] to h and the rest to w.
    fn rope_sections(&self, pos_stride: usize) -> anyhow::Result<Vec<usize>> {
        let half = self.config.head_dim / 2;
        match (&self.config.mrope_section, pos_stride) {
            (None, 1) => Ok(vec![0; half]),
            (Some(sections), 3) => {
                Ok(sections.iter().enumerate().flat_map(|(s, &n)| std::iter::repeat_n(s, n)).collect())
            }
            (None, n) => bail!("this model uses 1 position per token, the batch has {n}"),
            (Some(_), n) => bail!("M-RoPE needs 3 positions (t, h, w) per token, the batch has {n}"),
        }
    }

    /// Resident weight bytes (matrices in their checkpoint dtype, vectors in f32).
    pub fn weight_bytes(&self) -> u64 {
        let mut total = self.embed_tokens.bytes() + self.lm_head.as_ref().map_or(0, |w| w.bytes());
        for l in &self.layers {
            let a = &l.self_attn;
            let m = &l.mlp;
            for lin in [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj, &m.gate_proj, &m.up_proj, &m.down_proj] {
                total += lin.weight.bytes() + lin.bias.as_ref().map_or(0, |b| b.size());
            }
            total += l.input_layernorm.size() + l.post_attention_layernorm.size();
        }
        total + self.norm.size()
    }
}
