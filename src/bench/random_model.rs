use std::sync::Arc;

use crate::gpu::{Gpu, WeightDType, WeightTensor};
use crate::models::decoder::{Attention, Decoder, DecoderLayer, Linear, Mlp};
use crate::models::TextConfig;

/// Qwen2.5-7B's text decoder shape (Qwen2.5-VL-7B's LM), with `layers` layers.
pub fn qwen2_5_7b_shape(layers: usize) -> TextConfig {
    TextConfig {
        hidden_size: 3584,
        intermediate_size: 18944,
        num_hidden_layers: layers,
        num_attention_heads: 28,
        num_key_value_heads: 4,
        head_dim: 128,
        vocab_size: 152064,
        rms_norm_eps: 1e-6,
        rope_theta: 1e6,
        tie_word_embeddings: false,
        qkv_bias: true,
        sliding_window: None,
        max_position_embeddings: 32768,
        mrope_section: None,
    }
}

/// Random bf16 bytes, small magnitudes so activations stay finite through many layers. One
/// block is generated and repeated: throughput does not depend on the values.
struct RandomBf16 {
    block: Vec<u8>,
}

impl RandomBf16 {
    fn new(seed: u64) -> Self {
        let mut s = seed | 1;
        let block = (0..(1 << 22))
            .flat_map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let v = ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04;
                half::bf16::from_f32(v).to_le_bytes()
            })
            .collect();
        RandomBf16 { block }
    }

    fn bytes(&self, n: usize) -> Vec<u8> {
        self.block.iter().copied().cycle().take(n).collect()
    }

    fn matrix(&self, gpu: &Arc<Gpu>, name: &str, rows: usize, cols: usize) -> anyhow::Result<WeightTensor> {
        Ok(WeightTensor::upload(gpu, name, WeightDType::BF16, rows, cols, &self.bytes(rows * cols * 2))?)
    }

    fn linear(&self, gpu: &Arc<Gpu>, name: &str, rows: usize, cols: usize, bias: bool) -> anyhow::Result<Linear> {
        let bias = if bias { Some(gpu.storage_from(name, &vec![0.01f32; rows])?) } else { None };
        Ok(Linear { weight: self.matrix(gpu, name, rows, cols)?, bias })
    }
}

/// A decoder of the given shape with random bf16 weights, resident like a real checkpoint.
pub fn random_decoder(gpu: &Arc<Gpu>, c: &TextConfig) -> anyhow::Result<Decoder> {
    let r = RandomBf16::new(0x5eed);
    let (h, i) = (c.hidden_size, c.intermediate_size);
    let (q, kv) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
    let ones = || gpu.storage_from("norm", &vec![1.0f32; h]);
    let mut layers = Vec::new();
    for l in 0..c.num_hidden_layers {
        let n = |s: &str| format!("layers.{l}.{s}");
        layers.push(DecoderLayer {
            self_attn: Attention {
                q_proj: r.linear(gpu, &n("q_proj"), q, h, c.qkv_bias)?,
                k_proj: r.linear(gpu, &n("k_proj"), kv, h, c.qkv_bias)?,
                v_proj: r.linear(gpu, &n("v_proj"), kv, h, c.qkv_bias)?,
                o_proj: r.linear(gpu, &n("o_proj"), h, q, false)?,
            },
            mlp: Mlp {
                gate_proj: r.linear(gpu, &n("gate_proj"), i, h, false)?,
                up_proj: r.linear(gpu, &n("up_proj"), i, h, false)?,
                down_proj: r.linear(gpu, &n("down_proj"), h, i, false)?,
            },
            input_layernorm: ones()?,
            post_attention_layernorm: ones()?,
        });
    }
    let embed = r.matrix(gpu, "embed_tokens", c.vocab_size, h)?;
    let lm_head = r.matrix(gpu, "lm_head", c.vocab_size, h)?;
    Decoder::from_parts(gpu, c, embed, layers, ones()?, Some(lm_head))
}
