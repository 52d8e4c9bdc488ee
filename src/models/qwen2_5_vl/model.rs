use std::path::Path;
use std::sync::Arc;

use super::positions::PositionIds;
use super::rope_index::get_rope_index;
use super::vision::{VisionCapture, VisionTransformer};
use crate::gpu::{Gpu, Recorder};
use crate::models::batch::PackedBatch;
use crate::models::config::{Architecture, ModelConfig};
use crate::models::decoder::{Decoder, ForwardOptions, ForwardOutput, KvCache, Splice};
use crate::ops::swiglu::EXCLUDED;
use crate::weights::WeightStore;

/// One preprocessed image: [patches, C·T·P·P] pixel values and its (t, h, w) patch grid.
#[derive(Debug, Clone)]
pub struct ImageInput {
    pub pixel_values: Vec<f32>,
    pub grid_thw: [usize; 3],
}

/// A prompt of a packed batch: its token ids (image placeholders already expanded to one
/// image-token id per merged patch) and its images in order of appearance.
pub struct VlPrompt<'a> {
    pub ids: &'a [u32],
    pub images: &'a [ImageInput],
}

#[allow(non_camel_case_types)]
pub struct Qwen2_5_VLForConditionalGeneration {
    pub config: ModelConfig,
    pub visual: VisionTransformer,
    pub model: Decoder,
    pub position_ids: PositionIds,
}

/// The packed batch plus where each image's embeddings go.
pub struct VlBatch {
    pub batch: PackedBatch,
    /// Per image, in batch order: the first token row it fills.
    pub image_rows: Vec<usize>,
    pub rope_deltas: Vec<i64>,
}

impl Qwen2_5_VLForConditionalGeneration {
    pub fn load(gpu: &Arc<Gpu>, dir: &Path) -> anyhow::Result<Qwen2_5_VLForConditionalGeneration> {
        let config = ModelConfig::load(dir)?;
        if config.architecture != Architecture::Qwen2_5_VLForConditionalGeneration {
            anyhow::bail!(
                "{}: {} is not Qwen2_5_VLForConditionalGeneration",
                config.path.display(),
                config.architecture.hf_name()
            );
        }
        let store = WeightStore::open(dir)?;
        let vision = config.vision.as_ref().expect("parsed with the architecture");
        if vision.out_hidden_size != config.text.hidden_size {
            anyhow::bail!(
                "{}: vision out_hidden_size {} != hidden_size {}",
                config.path.display(),
                vision.out_hidden_size,
                config.text.hidden_size
            );
        }
        let visual = VisionTransformer::load(gpu, &store, vision)?;
        let model = Decoder::load(gpu, &store, &config.text, "model.", "lm_head.weight")?;
        let position_ids = PositionIds::for_model(dir)?;
        Ok(Qwen2_5_VLForConditionalGeneration { config, visual, model, position_ids })
    }

    /// Packs prompts with their M-RoPE positions; every token is excluded from statistics
    /// until a caller assigns groups.
    pub fn pack(&self, prompts: &[VlPrompt<'_>]) -> anyhow::Result<VlBatch> {
        let vc = &self.visual.config;
        let mut b = PackedBatch { pos_stride: 3, seq_starts: vec![0], ..Default::default() };
        let mut image_rows = Vec::new();
        let mut rope_deltas = Vec::new();
        for p in prompts {
            let grids: Vec<[usize; 3]> = p.images.iter().map(|i| i.grid_thw).collect();
            let (pos, delta) = match self.position_ids {
                PositionIds::Mrope => get_rope_index(p.ids, &grids, vc)?,
                PositionIds::Sequential => ((0..p.ids.len() as i64).flat_map(|i| [i, i, i]).collect(), 0),
            };
            let start = b.tokens.len();
            let mut i = 0;
            for g in &grids {
                while p.ids[i] != vc.image_token_id {
                    i += 1;
                }
                image_rows.push(start + i);
                i += g[0] * g[1] * g[2] / vc.merge_unit();
            }
            b.tokens.extend_from_slice(p.ids);
            b.positions.extend(pos);
            b.token_group.extend(std::iter::repeat_n(EXCLUDED, p.ids.len()));
            b.seq_starts.push(b.tokens.len());
            b.cached_prefix.push(0);
            rope_deltas.push(delta);
        }
        Ok(VlBatch { batch: b, image_rows, rope_deltas })
    }

    /// Prefill: vision tower on every image, image embeddings spliced over the image-token
    /// rows, then the decoder.
    pub fn forward(
        &self,
        vl: &VlBatch,
        images: &[ImageInput],
        cache: &mut KvCache,
        opts: &ForwardOptions<'_>,
        vision_capture: Option<&mut VisionCapture>,
    ) -> anyhow::Result<ForwardOutput> {
        let mut rec = Recorder::new(self.model.gpu());
        if images.is_empty() {
            return self.model.prefill(rec, &vl.batch, &[], cache, opts);
        }
        let pixels: Vec<f32> = images.iter().flat_map(|i| i.pixel_values.iter().copied()).collect();
        let grids: Vec<[usize; 3]> = images.iter().map(|i| i.grid_thw).collect();
        let (embeds, _) = self.visual.forward(&mut rec, &pixels, &grids, vision_capture)?;
        let unit = self.visual.config.merge_unit();
        let mut src_row = 0;
        let splices: Vec<Splice<'_>> = grids
            .iter()
            .zip(&vl.image_rows)
            .map(|(g, &dst_row)| {
                let rows = g.iter().product::<usize>() / unit;
                src_row += rows;
                Splice { src: &embeds, src_row: src_row - rows, dst_row, rows }
            })
            .collect();
        self.model.prefill(rec, &vl.batch, &splices, cache, opts)
    }

    /// Image embeddings alone, [merged tokens, hidden], for checking the tower.
    pub fn image_embeds(&self, images: &[ImageInput], capture: Option<&mut VisionCapture>) -> anyhow::Result<Vec<f32>> {
        let gpu = self.model.gpu();
        let mut rec = Recorder::new(gpu);
        let pixels: Vec<f32> = images.iter().flat_map(|i| i.pixel_values.iter().copied()).collect();
        let grids: Vec<[usize; 3]> = images.iter().map(|i| i.grid_thw).collect();
        let (buf, n) = self.visual.forward(&mut rec, &pixels, &grids, capture)?;
        rec.finish()?;
        Ok(gpu.read(&buf, 0, n * self.config.text.hidden_size)?)
    }
}
