use std::path::Path;
use std::sync::Arc;

use super::clip::{ClipCapture, ClipVisionModel};
use super::config::LlavaNextConfig;
use crate::gpu::{Gpu, Recorder};
use crate::models::batch::PackedBatch;
use crate::models::config::{Architecture, ModelConfig};
use crate::models::decoder::{load_vector, Decoder, ForwardOptions, ForwardOutput, KvCache, Linear, Splice};
use crate::ops::activation::activation;
use crate::ops::gather::gather_rows;
use crate::ops::matmul::MatmulOut;
use crate::vision::llava_next::{anyres_grid_shape, unpad_region};
use crate::weights::WeightStore;

/// One preprocessed image: its crops ([crops, C, S, S]: the resized whole image first, then
/// the grid crops row by row) and its original (height, width).
#[derive(Debug, Clone)]
pub struct LlavaImage {
    pub pixel_values: Vec<f32>,
    pub crops: usize,
    pub image_size_hw: (usize, usize),
}

pub struct LlavaNextMultiModalProjector {
    pub linear_1: Linear,
    pub linear_2: Linear,
}

pub struct LlavaNextForConditionalGeneration {
    pub config: ModelConfig,
    pub llava: LlavaNextConfig,
    pub vision_tower: ClipVisionModel,
    pub multi_modal_projector: LlavaNextMultiModalProjector,
    pub image_newline: wgpu::Buffer,
    pub model: Decoder,
}

impl LlavaNextForConditionalGeneration {
    pub fn load(gpu: &Arc<Gpu>, dir: &Path) -> anyhow::Result<LlavaNextForConditionalGeneration> {
        let config = ModelConfig::load(dir)?;
        if config.architecture != Architecture::LlavaNextForConditionalGeneration {
            anyhow::bail!(
                "{}: {} is not LlavaNextForConditionalGeneration",
                config.path.display(),
                config.architecture.hf_name()
            );
        }
        let llava = config.llava_next.clone().expect("parsed with the architecture");
        let store = WeightStore::open(dir)?;
        let (dv, h) = (llava.vision.hidden_size, config.text.hidden_size);
        Ok(LlavaNextForConditionalGeneration {
            vision_tower: ClipVisionModel::load(gpu, &store, &llava)?,
            multi_modal_projector: LlavaNextMultiModalProjector {
                linear_1: Linear::load(gpu, &store, "multi_modal_projector.linear_1", h, dv, true)?,
                linear_2: Linear::load(gpu, &store, "multi_modal_projector.linear_2", h, h, true)?,
            },
            image_newline: load_vector(gpu, &store, "image_newline", h)?,
            model: Decoder::load(gpu, &store, &config.text, "language_model.model.", "language_model.lm_head.weight")?,
            llava,
            config,
        })
    }

    /// Rows of [projected crop features ‖ image_newline] in HF's pack_image_features order:
    /// the base image's features, then the crop grid unpadded to the original aspect ratio
    /// with image_newline closing every row.
    pub fn packing_order(&self, image: &LlavaImage) -> Vec<u32> {
        let side = self.llava.vision.patches_per_side();
        let per_crop = side * side;
        let newline = (image.crops * per_crop) as u32;
        let mut rows: Vec<u32> = (0..per_crop as u32).collect();
        if image.crops == 1 {
            rows.push(newline);
            return rows;
        }
        let (gh, gw) =
            anyres_grid_shape(image.image_size_hw, &self.llava.image_grid_pinpoints, self.llava.vision.image_size);
        let (h, w, r0, c0) = unpad_region((gh * side, gw * side), image.image_size_hw);
        for y in r0..r0 + h {
            for x in c0..c0 + w {
                let crop = 1 + (y / side) * gw + x / side;
                rows.push((crop * per_crop + (y % side) * side + x % side) as u32);
            }
            rows.push(newline);
        }
        rows
    }

    /// Image features for the image-token rows of one image: [tokens, hidden].
    fn image_features(
        &self,
        rec: &mut Recorder,
        image: &LlavaImage,
        capture: Option<&mut ClipCapture>,
    ) -> anyhow::Result<(wgpu::Buffer, usize, wgpu::Buffer)> {
        let gpu = self.model.gpu();
        let side = self.llava.vision.patches_per_side();
        let n = image.crops * side * side;
        let h = self.config.text.hidden_size;
        let features = self.vision_tower.forward(rec, &image.pixel_values, image.crops, capture)?;
        let hidden = gpu.storage_buffer("projector hidden", (n * h * 4) as u64)?;
        // One row past the projected features holds image_newline, so packing is one gather.
        let projected = gpu.storage_buffer("projected", ((n + 1) * h * 4) as u64)?;
        self.multi_modal_projector.linear_1.forward(rec, &features, &hidden, n, MatmulOut::default());
        activation(rec, self.llava.projector_hidden_act, &hidden, n * h);
        self.multi_modal_projector.linear_2.forward(rec, &hidden, &projected, n, MatmulOut::default());
        rec.copy(&self.image_newline, 0, &projected, (n * h * 4) as u64, (h * 4) as u64);
        let order = self.packing_order(image);
        let order_buf = gpu.storage_from("packing order", &order)?;
        let packed = gpu.storage_buffer("image features", (order.len() * h * 4) as u64)?;
        gather_rows(rec, &projected, &order_buf, &packed, order.len(), h);
        Ok((packed, order.len(), projected))
    }

    /// Records one image's features, the rows its image tokens take, into a new buffer.
    pub fn record_image_features(
        &self,
        rec: &mut Recorder,
        image: &LlavaImage,
    ) -> anyhow::Result<(wgpu::Buffer, usize)> {
        let (packed, n, _) = self.image_features(rec, image, None)?;
        Ok((packed, n))
    }

    /// Image features alone (for checking against HF), plus the projected crop features.
    pub fn image_embeds(
        &self,
        image: &LlavaImage,
        capture: Option<&mut ClipCapture>,
    ) -> anyhow::Result<(Vec<f32>, Vec<f32>)> {
        let gpu = self.model.gpu();
        let mut rec = Recorder::new(gpu);
        let (packed, n, projected) = self.image_features(&mut rec, image, capture)?;
        rec.finish()?;
        let h = self.config.text.hidden_size;
        let side = self.llava.vision.patches_per_side();
        Ok((gpu.read(&packed, 0, n * h)?, gpu.read(&projected, 0, image.crops * side * side * h)?))
    }

    /// Prefill: each image's features replace its run of image tokens (in order), then the
    /// language model runs on the packed batch.
    pub fn forward(
        &self,
        batch: &PackedBatch,
        images: &[LlavaImage],
        cache: &mut KvCache,
        opts: &ForwardOptions<'_>,
    ) -> anyhow::Result<ForwardOutput> {
        let mut rec = Recorder::new(self.model.gpu());
        let runs = image_token_runs(&batch.tokens, self.llava.image_token_index);
        if runs.len() != images.len() {
            anyhow::bail!("the batch has {} runs of image tokens but {} images were given", runs.len(), images.len());
        }
        let mut features = Vec::with_capacity(images.len());
        for (img, &(start, len)) in images.iter().zip(&runs) {
            let (buffer, n, _) = self.image_features(&mut rec, img, None)?;
            if n != len {
                anyhow::bail!(
                    "an image of {}x{} gives {n} features but its prompt has {len} image tokens",
                    img.image_size_hw.0,
                    img.image_size_hw.1
                );
            }
            features.push((buffer, start, len));
        }
        let splices: Vec<Splice<'_>> = features
            .iter()
            .map(|(src, dst_row, rows)| Splice { src, src_row: 0, dst_row: *dst_row, rows: *rows })
            .collect();
        self.model.prefill(rec, batch, &splices, cache, opts)
    }
}

/// (start, length) of each maximal run of `image_token` in `ids`.
pub fn image_token_runs(ids: &[u32], image_token: u32) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        if ids[i] == image_token {
            let start = i;
            while i < ids.len() && ids[i] == image_token {
                i += 1;
            }
            runs.push((start, i - start));
        } else {
            i += 1;
        }
    }
    runs
}
