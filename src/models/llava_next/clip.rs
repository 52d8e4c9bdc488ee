//! CLIPVisionTransformer (modeling_clip.py) as LLaVA-NeXT uses it: embeddings (patch conv as a
//! matmul, CLS, positions), pre_layrnorm, encoder layers up to the selected hidden state.

use std::sync::Arc;

use super::config::LlavaNextConfig;
use crate::gpu::{Gpu, Recorder, WeightTensor};
use crate::models::decoder::{load_vector, Linear};
use crate::ops::activation::activation;
use crate::ops::attention::{attention, AttentionShape};
use crate::ops::gather::{gather_rows, gather_rows_add};
use crate::ops::layernorm::layernorm;
use crate::ops::matmul::{matmul, MatmulOut};
use crate::weights::WeightStore;

pub struct LayerNorm {
    pub weight: wgpu::Buffer,
    pub bias: wgpu::Buffer,
}

impl LayerNorm {
    fn load(gpu: &Arc<Gpu>, store: &WeightStore, name: &str, width: usize) -> anyhow::Result<LayerNorm> {
        Ok(LayerNorm {
            weight: load_vector(gpu, store, &format!("{name}.weight"), width)?,
            bias: load_vector(gpu, store, &format!("{name}.bias"), width)?,
        })
    }
}

pub struct ClipEncoderLayer {
    pub layer_norm1: LayerNorm,
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub layer_norm2: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

pub struct ClipVisionModel {
    pub config: LlavaNextConfig,
    /// Conv2d weight [hidden, C, P, P] as a [hidden, C·P·P] matrix.
    pub patch_embedding: WeightTensor,
    /// position_embedding with class_embedding added to row 0: the CLS row's whole embedding.
    pub position_table: wgpu::Buffer,
    pub pre_layrnorm: LayerNorm,
    /// Only the layers up to the selected hidden state; later ones never affect the output.
    pub layers: Vec<ClipEncoderLayer>,
    gpu: Arc<Gpu>,
}

/// The tower's hidden states for tests: index 0 = after pre_layrnorm, i = after layer i.
pub type ClipCapture = Vec<Vec<f32>>;

impl ClipVisionModel {
    pub fn load(gpu: &Arc<Gpu>, store: &WeightStore, config: &LlavaNextConfig) -> anyhow::Result<ClipVisionModel> {
        let c = &config.vision;
        let (d, p) = (c.hidden_size, "vision_tower.vision_model");
        let pe = format!("{p}.embeddings.patch_embedding.weight");
        let t = store.get_shaped(&pe, &[d, c.num_channels, c.patch_size, c.patch_size])?;
        let patch_embedding = WeightTensor::upload(
            gpu,
            &pe,
            t.weight_dtype()?,
            d,
            c.num_channels * c.patch_size * c.patch_size,
            t.bytes,
        )?;
        let class = store.get_shaped(&format!("{p}.embeddings.class_embedding"), &[d])?.to_f32()?;
        let mut table =
            store.get_shaped(&format!("{p}.embeddings.position_embedding.weight"), &[c.positions(), d])?.to_f32()?;
        for (t, cls) in table.iter_mut().zip(&class) {
            *t += cls;
        }
        let mut layers = Vec::new();
        for l in 0..config.layers_needed() {
            let n = |s: &str| format!("{p}.encoder.layers.{l}.{s}");
            layers.push(ClipEncoderLayer {
                layer_norm1: LayerNorm::load(gpu, store, &n("layer_norm1"), d)?,
                q_proj: Linear::load(gpu, store, &n("self_attn.q_proj"), d, d, true)?,
                k_proj: Linear::load(gpu, store, &n("self_attn.k_proj"), d, d, true)?,
                v_proj: Linear::load(gpu, store, &n("self_attn.v_proj"), d, d, true)?,
                out_proj: Linear::load(gpu, store, &n("self_attn.out_proj"), d, d, true)?,
                layer_norm2: LayerNorm::load(gpu, store, &n("layer_norm2"), d)?,
                fc1: Linear::load(gpu, store, &n("mlp.fc1"), c.intermediate_size, d, true)?,
                fc2: Linear::load(gpu, store, &n("mlp.fc2"), d, c.intermediate_size, true)?,
            });
        }
        Ok(ClipVisionModel {
            config: config.clone(),
            patch_embedding,
            position_table: gpu.storage_from("clip positions", &table)?,
            pre_layrnorm: LayerNorm::load(gpu, store, &format!("{p}.pre_layrnorm"), d)?,
            layers,
            gpu: gpu.clone(),
        })
    }

    /// Runs `crops` square crops ([crops, C, S, S] f32) and returns the selected hidden state
    /// without CLS: [crops · patches, hidden], crop-major then row-major patches.
    pub fn forward(
        &self,
        rec: &mut Recorder,
        pixel_values: &[f32],
        crops: usize,
        capture: Option<&mut ClipCapture>,
    ) -> anyhow::Result<wgpu::Buffer> {
        let c = &self.config.vision;
        let gpu = &self.gpu;
        let (s, p, side, ch, d) = (c.image_size, c.patch_size, c.patches_per_side(), c.num_channels, c.hidden_size);
        if pixel_values.len() != crops * ch * s * s {
            anyhow::bail!(
                "pixel_values hold {} values; {crops} crops of {ch}x{s}x{s} need {}",
                pixel_values.len(),
                crops * ch * s * s
            );
        }
        let per_crop = side * side;
        let positions = c.positions();
        let rows = crops * positions;
        // Patchify on the host: row (crop, py, px) = pixels (channel, ky, kx), the conv weight's order.
        let mut patches = Vec::with_capacity(crops * per_crop * ch * p * p);
        for crop in 0..crops {
            for py in 0..side {
                for px in 0..side {
                    for k in 0..ch {
                        for ky in 0..p {
                            let at = ((crop * ch + k) * s + py * p + ky) * s + px * p;
                            patches.extend_from_slice(&pixel_values[at..at + p]);
                        }
                    }
                }
            }
        }
        let patches = gpu.storage_from("clip patches", &patches)?;
        // One extra zero row stands in for the CLS position before the position table is added.
        let embedded = gpu.storage_buffer("clip patch embeds", ((crops * per_crop + 1) * d * 4) as u64)?;
        let zero_row = (crops * per_crop) as u32;
        let source: Vec<u32> = (0..rows)
            .map(
                |r| if r % positions == 0 { zero_row } else { ((r / positions) * per_crop + r % positions - 1) as u32 },
            )
            .collect();
        let source = gpu.storage_from("clip rows", &source)?;
        let position_of: Vec<u32> = (0..rows).map(|r| (r % positions) as u32).collect();
        let position_of = gpu.storage_from("clip position rows", &position_of)?;
        let f = |w: usize| (rows * w * 4) as u64;
        let x = gpu.storage_buffer("clip embeddings", f(d))?;
        let hidden = gpu.storage_buffer("clip hidden", f(d))?;
        let xn = gpu.storage_buffer("clip normed", f(d))?;
        let (q, k, v, attn) = (
            gpu.storage_buffer("clip q", f(d))?,
            gpu.storage_buffer("clip k", f(d))?,
            gpu.storage_buffer("clip v", f(d))?,
            gpu.storage_buffer("clip attn", f(d))?,
        );
        let mlp = gpu.storage_buffer("clip mlp", f(c.intermediate_size))?;
        let ranges: Vec<u32> = (0..rows)
            .flat_map(|r| [(r / positions * positions) as u32, ((r / positions + 1) * positions) as u32])
            .collect();
        let ranges = gpu.storage_from("clip ranges", &ranges)?;
        let eps = c.layer_norm_eps;

        matmul(rec, &patches, &self.patch_embedding, None, &embedded, crops * per_crop, MatmulOut::default());
        gather_rows(rec, &embedded, &source, &x, rows, d);
        gather_rows_add(rec, &self.position_table, &position_of, &x, rows, d);
        layernorm(rec, &x, &self.pre_layrnorm.weight, &self.pre_layrnorm.bias, &hidden, rows, d, eps);
        let capture_buf = if capture.is_some() {
            Some(gpu.storage_buffer("clip capture", f(d) * (self.layers.len() as u64 + 1))?)
        } else {
            None
        };
        if let Some(cap) = &capture_buf {
            rec.copy(&hidden, 0, cap, 0, f(d));
        }
        let shape = AttentionShape {
            tokens: rows,
            heads: c.num_attention_heads,
            kv_heads: c.num_attention_heads,
            head_dim: c.head_dim(),
            // Each crop's positions attend to each other.
            max_keys: c.positions(),
        };
        let scale = 1.0 / (c.head_dim() as f32).sqrt();
        let residual = MatmulOut { row_offset: 0, accumulate: true };
        for (l, layer) in self.layers.iter().enumerate() {
            layernorm(rec, &hidden, &layer.layer_norm1.weight, &layer.layer_norm1.bias, &xn, rows, d, eps);
            layer.q_proj.forward(rec, &xn, &q, rows, MatmulOut::default());
            layer.k_proj.forward(rec, &xn, &k, rows, MatmulOut::default());
            layer.v_proj.forward(rec, &xn, &v, rows, MatmulOut::default());
            attention(rec, &q, &k, &v, &ranges, &attn, shape, scale);
            layer.out_proj.forward(rec, &attn, &hidden, rows, residual);
            layernorm(rec, &hidden, &layer.layer_norm2.weight, &layer.layer_norm2.bias, &xn, rows, d, eps);
            layer.fc1.forward(rec, &xn, &mlp, rows, MatmulOut::default());
            activation(rec, c.hidden_act, &mlp, rows * c.intermediate_size);
            layer.fc2.forward(rec, &mlp, &hidden, rows, residual);
            if let Some(cap) = &capture_buf {
                rec.copy(&hidden, 0, cap, f(d) * (l as u64 + 1), f(d));
            }
        }
        // vision_feature_select_strategy "default": every position but CLS.
        let keep: Vec<u32> = (0..rows).filter(|r| r % positions != 0).map(|r| r as u32).collect();
        let keep_buf = gpu.storage_from("clip keep", &keep)?;
        let features = gpu.storage_buffer("clip features", (keep.len() * d * 4) as u64)?;
        gather_rows(rec, &hidden, &keep_buf, &features, keep.len(), d);
        if let (Some(out), Some(buf)) = (capture, &capture_buf) {
            let mut fresh = Recorder::new(gpu);
            std::mem::swap(rec, &mut fresh);
            fresh.finish()?;
            let all: Vec<f32> = gpu.read(buf, 0, (self.layers.len() + 1) * rows * d)?;
            *out = all.chunks(rows * d).map(|s| s.to_vec()).collect();
        }
        Ok(features)
    }
}
