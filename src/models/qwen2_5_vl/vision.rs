//! Qwen2_5_VisionTransformerPretrainedModel: patch embedding, 2D rotary embedding, blocks with
//! window or full attention, and the patch merger. Blocks run in HF's window order; the merged
//! output is put back in patch order at the end, exactly as HF does.

use std::sync::Arc;

use super::config::VisionConfig;
use super::rope_index::window_index;
use crate::gpu::{Gpu, Recorder, WeightTensor};
use crate::models::decoder::{load_vector, Linear, Mlp};
use crate::models::Intervention;
use crate::ops::activation::gelu;
use crate::ops::attention::{attention, max_keys, AttentionShape};
use crate::ops::gather::gather_rows;
use crate::ops::matmul::MatmulOut;
use crate::ops::rmsnorm::rmsnorm;
use crate::ops::rope::{inv_freq, rope, rope_tables};
use crate::ops::swiglu::{swiglu, SwigluSide, TokenSegments, EXCLUDED};
use crate::weights::WeightStore;

/// HF hard-codes eps 1e-6 for every RMSNorm of the vision tower.
const EPS: f32 = 1e-6;

pub struct VisionAttention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub proj: Linear,
}

pub struct VisionBlock {
    pub norm1: wgpu::Buffer,
    pub norm2: wgpu::Buffer,
    pub attn: VisionAttention,
    pub mlp: Mlp,
}

pub struct PatchMerger {
    pub ln_q: wgpu::Buffer,
    pub mlp_0: Linear,
    pub mlp_2: Linear,
}

pub struct VisionTransformer {
    pub config: VisionConfig,
    /// Conv3d weight [hidden, C, T, P, P] seen as a [hidden, C·T·P·P] matrix: a stride-equals-
    /// kernel convolution over flattened patches is a matmul.
    pub patch_embed: WeightTensor,
    pub blocks: Vec<VisionBlock>,
    pub merger: PatchMerger,
    /// The vision MLPs are not neurons of interest: they run through the fused SwiGLU with an
    /// identity intervention and no statistics.
    identity: Intervention,
    gpu: Arc<Gpu>,
}

/// Where the patches of a packed set of images go, and how the blocks attend.
struct Layout {
    /// Patch row (processor order) of each row in window order.
    patch_of_row: Vec<u32>,
    /// Merge group (processor order) → its row in window order, over merged tokens.
    group_row: Vec<u32>,
    window_ranges: Vec<u32>,
    full_ranges: Vec<u32>,
    /// (h, w) of each patch in window order.
    positions: Vec<i64>,
}

/// Hidden states captured for tests: patch embeddings and each block's output, in patch order.
#[derive(Default)]
pub struct VisionCapture {
    pub patch_embeds: Vec<f32>,
    pub blocks: Vec<Vec<f32>>,
}

impl VisionTransformer {
    pub fn load(gpu: &Arc<Gpu>, store: &WeightStore, c: &VisionConfig) -> anyhow::Result<VisionTransformer> {
        let d = c.hidden_size;
        let pe = "visual.patch_embed.proj.weight";
        let t = store.get_shaped(pe, &[d, c.in_chans, c.temporal_patch_size, c.patch_size, c.patch_size])?;
        let patch_embed = WeightTensor::upload(gpu, pe, t.weight_dtype()?, d, c.patch_dim(), t.bytes)?;
        let mut blocks = Vec::with_capacity(c.depth);
        for b in 0..c.depth {
            let p = format!("visual.blocks.{b}");
            let qkv = format!("{p}.attn.qkv");
            blocks.push(VisionBlock {
                norm1: load_vector(gpu, store, &format!("{p}.norm1.weight"), d)?,
                norm2: load_vector(gpu, store, &format!("{p}.norm2.weight"), d)?,
                attn: VisionAttention {
                    q: Linear::load_rows(gpu, store, &qkv, 3 * d, 0, d, d)?,
                    k: Linear::load_rows(gpu, store, &qkv, 3 * d, d, d, d)?,
                    v: Linear::load_rows(gpu, store, &qkv, 3 * d, 2 * d, d, d)?,
                    proj: Linear::load(gpu, store, &format!("{p}.attn.proj"), d, d, true)?,
                },
                mlp: Mlp {
                    gate_proj: Linear::load(gpu, store, &format!("{p}.mlp.gate_proj"), c.intermediate_size, d, true)?,
                    up_proj: Linear::load(gpu, store, &format!("{p}.mlp.up_proj"), c.intermediate_size, d, true)?,
                    down_proj: Linear::load(gpu, store, &format!("{p}.mlp.down_proj"), d, c.intermediate_size, true)?,
                },
            });
        }
        let merged = d * c.merge_unit();
        let merger = PatchMerger {
            ln_q: load_vector(gpu, store, "visual.merger.ln_q.weight", d)?,
            mlp_0: Linear::load(gpu, store, "visual.merger.mlp.0", merged, merged, true)?,
            mlp_2: Linear::load(gpu, store, "visual.merger.mlp.2", c.out_hidden_size, merged, true)?,
        };
        Ok(VisionTransformer {
            identity: Intervention::identity(gpu, 1, c.intermediate_size)?,
            config: c.clone(),
            patch_embed,
            blocks,
            merger,
            gpu: gpu.clone(),
        })
    }

    fn layout(&self, grids: &[[usize; 3]]) -> Layout {
        let c = &self.config;
        let (m, unit) = (c.spatial_merge_size, c.merge_unit());
        let mut l = Layout {
            patch_of_row: Vec::new(),
            group_row: Vec::new(),
            window_ranges: Vec::new(),
            full_ranges: Vec::new(),
            positions: Vec::new(),
        };
        let mut patch0 = 0;
        for &grid in grids {
            let [t, h, w] = grid;
            let n = t * h * w;
            let (order, sizes) = window_index(grid, c);
            let group0 = patch0 / unit;
            let mut group_row = vec![0u32; order.len()];
            for (row, &g) in order.iter().enumerate() {
                group_row[g] = (group0 + row) as u32;
                for u in 0..unit {
                    let patch = g * unit + u;
                    l.patch_of_row.push((patch0 + patch) as u32);
                    // Processor order inside a frame: (h/m, w/m, m, m).
                    let (block, inner) = ((patch % (h * w)) / unit, patch % unit);
                    let (by, bx) = (block / (w / m), block % (w / m));
                    l.positions.extend([(by * m + inner / m) as i64, (bx * m + inner % m) as i64]);
                }
            }
            l.group_row.extend(group_row);
            let mut start = patch0;
            for s in sizes {
                l.window_ranges.extend(std::iter::repeat_n([start as u32, (start + s) as u32], s).flatten());
                start += s;
            }
            l.full_ranges.extend(std::iter::repeat_n([patch0 as u32, (patch0 + n) as u32], n).flatten());
            patch0 += n;
        }
        l
    }

    /// Runs the tower on `pixel_values` ([patches, C·T·P·P], images concatenated in `grids`
    /// order) and returns a buffer of merged image embeddings [patches / merge², out_hidden] in
    /// patch order, ready to be copied into the image-token rows of the LM input.
    pub fn forward(
        &self,
        rec: &mut Recorder,
        pixel_values: &[f32],
        grids: &[[usize; 3]],
        capture: Option<&mut VisionCapture>,
    ) -> anyhow::Result<(wgpu::Buffer, usize)> {
        let c = &self.config;
        let gpu = &self.gpu;
        let n: usize = grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
        for g in grids {
            if g[1] % c.spatial_merge_size != 0 || g[2] % c.spatial_merge_size != 0 {
                anyhow::bail!("image grid {g:?} is not a multiple of spatial_merge_size {}", c.spatial_merge_size);
            }
        }
        if pixel_values.len() != n * c.patch_dim() {
            anyhow::bail!(
                "pixel_values hold {} values; grids {grids:?} need {} x {}",
                pixel_values.len(),
                n,
                c.patch_dim()
            );
        }
        let (d, hd, unit) = (c.hidden_size, c.head_dim(), c.merge_unit());
        let layout = self.layout(grids);
        let f = |w: usize| (n * w * 4) as u64;
        let pixels = gpu.storage_from("pixel values", pixel_values)?;
        let embedded = gpu.storage_buffer("patch embeds", f(d))?;
        let hidden = gpu.storage_buffer("vision hidden", f(d))?;
        let xn = gpu.storage_buffer("vision normed", f(d))?;
        let (q, k, v, attn) = (
            gpu.storage_buffer("vision q", f(d))?,
            gpu.storage_buffer("vision k", f(d))?,
            gpu.storage_buffer("vision v", f(d))?,
            gpu.storage_buffer("vision attn", f(d))?,
        );
        // The MLP's [patches, intermediate] activations run in row blocks that fit one binding.
        let mlp_rows = ((gpu.max_binding_bytes / (c.intermediate_size as u64 * 4)) as usize).clamp(1, n.max(1));
        let gate = gpu.storage_buffer("vision gate", (mlp_rows * c.intermediate_size * 4) as u64)?;
        let up = gpu.storage_buffer("vision up", (mlp_rows * c.intermediate_size * 4) as u64)?;
        let x_block =
            if mlp_rows < n { Some(gpu.storage_buffer("vision mlp rows", (mlp_rows * d * 4) as u64)?) } else { None };
        let rows = gpu.storage_from("window order", &layout.patch_of_row)?;
        // The rotary dim is head_dim/2: its first half of frequencies follows h, the second w.
        let quarter = hd / 4;
        let base = inv_freq(hd / 2, 10000.0);
        let freqs: Vec<f32> = (0..hd / 2).map(|i| base[i % quarter]).collect();
        let sections: Vec<usize> = (0..hd / 2).map(|i| i / quarter).collect();
        let tables = rope_tables(&layout.positions, 2, &freqs, &sections);
        let cos = gpu.storage_from("vision cos", &tables.cos)?;
        let sin = gpu.storage_from("vision sin", &tables.sin)?;
        let window_ranges = gpu.storage_from("window ranges", &layout.window_ranges)?;
        let full_ranges = gpu.storage_from("full ranges", &layout.full_ranges)?;
        let no_groups = TokenSegments::new(gpu, &vec![EXCLUDED; mlp_rows], None, c.intermediate_size, false)?;
        let tail = n % mlp_rows;
        let tail_groups = if tail > 0 {
            Some(TokenSegments::new(gpu, &vec![EXCLUDED; tail], None, c.intermediate_size, false)?)
        } else {
            None
        };
        let capture_buf = match capture {
            Some(_) => Some(gpu.storage_buffer("vision capture", f(d) * (c.depth as u64 + 1))?),
            None => None,
        };

        self.patch_embed_forward(rec, &pixels, &embedded, n);
        gather_rows(rec, &embedded, &rows, &hidden, n, d);
        let max_keys = max_keys(&layout.window_ranges).max(max_keys(&layout.full_ranges));
        let shape = AttentionShape { tokens: n, heads: c.num_heads, kv_heads: c.num_heads, head_dim: hd, max_keys };
        let scale = 1.0 / (hd as f32).sqrt();
        let residual = MatmulOut { row_offset: 0, accumulate: true };
        for (b, block) in self.blocks.iter().enumerate() {
            let a = &block.attn;
            rmsnorm(rec, &hidden, &block.norm1, &xn, n, d, EPS);
            a.q.forward(rec, &xn, &q, n, MatmulOut::default());
            a.k.forward(rec, &xn, &k, n, MatmulOut::default());
            a.v.forward(rec, &xn, &v, n, MatmulOut::default());
            rope(rec, &cos, &sin, &q, n, c.num_heads, hd, 0);
            rope(rec, &cos, &sin, &k, n, c.num_heads, hd, 0);
            let ranges = if c.fullatt_block_indexes.contains(&b) { &full_ranges } else { &window_ranges };
            attention(rec, &q, &k, &v, ranges, &attn, shape, scale);
            a.proj.forward(rec, &attn, &hidden, n, residual);
            rmsnorm(rec, &hidden, &block.norm2, &xn, n, d, EPS);
            for r0 in (0..n).step_by(mlp_rows) {
                let rows = mlp_rows.min(n - r0);
                let x = match &x_block {
                    Some(xb) => {
                        rec.copy(&xn, (r0 * d * 4) as u64, xb, 0, (rows * d * 4) as u64);
                        xb
                    }
                    None => &xn,
                };
                block.mlp.gate_proj.forward(rec, x, &gate, rows, MatmulOut::default());
                block.mlp.up_proj.forward(rec, x, &up, rows, MatmulOut::default());
                let segments = if rows == mlp_rows { &no_groups } else { tail_groups.as_ref().unwrap_or(&no_groups) };
                let side = SwigluSide { segments, intervention: &self.identity.buffer, acc: None, layer: 0, layers: 1 };
                swiglu(rec, &gate, &up, &side, c.intermediate_size);
                block.mlp.down_proj.forward(rec, &gate, &hidden, rows, MatmulOut { row_offset: r0, accumulate: true });
            }
            if let Some(cap) = &capture_buf {
                rec.copy(&hidden, 0, cap, f(d) * (b as u64 + 1), f(d));
            }
        }
        if let Some(cap) = &capture_buf {
            rec.copy(&embedded, 0, cap, 0, f(d));
        }

        let merged = n / unit;
        let wide = d * unit;
        let m1 = gpu.storage_buffer("merger hidden", (merged * wide * 4) as u64)?;
        let m2 = gpu.storage_buffer("merger out", (merged * c.out_hidden_size * 4) as u64)?;
        let out = gpu.storage_buffer("image embeds", (merged * c.out_hidden_size * 4) as u64)?;
        // ln_q normalises each patch; the next Linear sees each run of merge² rows as one row.
        rmsnorm(rec, &hidden, &self.merger.ln_q, &xn, n, d, EPS);
        self.merger.mlp_0.forward(rec, &xn, &m1, merged, MatmulOut::default());
        gelu(rec, &m1, merged * wide);
        self.merger.mlp_2.forward(rec, &m1, &m2, merged, MatmulOut::default());
        let back = gpu.storage_from("patch order", &layout.group_row)?;
        gather_rows(rec, &m2, &back, &out, merged, c.out_hidden_size);

        if let (Some(cap), Some(buf)) = (capture, &capture_buf) {
            let mut fresh = Recorder::new(gpu);
            std::mem::swap(rec, &mut fresh);
            fresh.finish()?;
            let all: Vec<f32> = gpu.read(buf, 0, (c.depth + 1) * n * d)?;
            // Captured rows are in window order; put them back in patch order.
            let unwindow = |s: &[f32]| {
                let mut o = vec![0f32; n * d];
                for (row, &patch) in layout.patch_of_row.iter().enumerate() {
                    o[patch as usize * d..(patch as usize + 1) * d].copy_from_slice(&s[row * d..(row + 1) * d]);
                }
                o
            };
            cap.patch_embeds = all[..n * d].to_vec();
            cap.blocks = all[n * d..].chunks(n * d).map(unwindow).collect();
        }
        Ok((out, merged))
    }

    fn patch_embed_forward(&self, rec: &mut Recorder, pixels: &wgpu::Buffer, out: &wgpu::Buffer, n: usize) {
        crate::ops::matmul::matmul(rec, pixels, &self.patch_embed, None, out, n, MatmulOut::default());
    }

    /// HF's window permutation of merge groups, for checking against the reference.
    pub fn window_order(&self, grids: &[[usize; 3]]) -> Vec<usize> {
        let mut group0 = 0;
        let mut all = Vec::new();
        for &g in grids {
            let (order, _) = window_index(g, &self.config);
            all.extend(order.iter().map(|x| x + group0));
            group0 += g[0] * g[1] * g[2] / self.config.merge_unit();
        }
        all
    }
}
