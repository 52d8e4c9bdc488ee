//! The vision-language families behind one interface, for the code that runs any of them the
//! same way (multiple-choice scoring with statistics, ablation, planting). A family contributes
//! only what differs: how an image becomes pixels and a number of image tokens, which positions a
//! prompt's tokens take, and how images become the features that fill the image-token rows.
//! Embedding, splicing, the decoder and its statistics are shared.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use image::RgbImage;

use super::batch::PackedBatch;
use super::config::{Architecture, ModelConfig};
use super::decoder::{Decoder, ForwardOptions, ForwardOutput, KvCache, Splice};
use super::llava_next::{image_token_runs, LlavaImage, LlavaNextForConditionalGeneration};
use super::qwen2_5_vl::{ImageInput, Qwen2_5_VLForConditionalGeneration, VlPrompt};
use crate::gpu::{Gpu, Recorder};
use crate::vision::llava_next::{anyres_grid_shape, num_image_tokens, LlavaNextImageProcessorConfig};
use crate::vision::qwen2_vl::{preprocess as qwen_preprocess, Qwen2VlImageProcessorConfig};

/// The image processor of a vision-language checkpoint (preprocessor_config.json, or the
/// `image_processor` section of processor_config.json).
#[derive(Debug, Clone)]
pub enum ImageProcessor {
    Qwen2Vl(Qwen2VlImageProcessorConfig),
    LlavaNext(LlavaNextImageProcessorConfig),
}

impl ImageProcessor {
    /// The processor settings `config`'s architecture reads; an error for text-only models.
    pub fn load(config: &ModelConfig, dir: &Path) -> anyhow::Result<ImageProcessor> {
        match config.architecture {
            Architecture::Qwen2_5_VLForConditionalGeneration => {
                Ok(ImageProcessor::Qwen2Vl(Qwen2VlImageProcessorConfig::load(dir)?))
            }
            Architecture::LlavaNextForConditionalGeneration => {
                Ok(ImageProcessor::LlavaNext(LlavaNextImageProcessorConfig::load(dir)?))
            }
            other => anyhow::bail!(
                "{}: {} is a text-only model; this step runs vision-language models ({VISION_LANGUAGE_CLASSES})",
                config.path.display(),
                other.hf_name()
            ),
        }
    }
}

/// An image budget set by the user, in pixels (Qwen2-VL processor semantics: the image is
/// resized so that its area lies in [min, max]); None keeps the processor's own value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageBudget {
    pub min_pixels: Option<usize>,
    pub max_pixels: Option<usize>,
}

impl ImageProcessor {
    /// The processor with `budget` applied. LLaVA-NeXT's budget is its image_grid_pinpoints, so
    /// pixel bounds are refused there rather than ignored.
    pub fn with_budget(self, budget: ImageBudget) -> anyhow::Result<ImageProcessor> {
        if budget == ImageBudget::default() {
            return Ok(self);
        }
        match self {
            ImageProcessor::Qwen2Vl(mut p) => {
                p.min_pixels = budget.min_pixels.unwrap_or(p.min_pixels);
                p.max_pixels = budget.max_pixels.unwrap_or(p.max_pixels);
                if p.min_pixels == 0 || p.min_pixels > p.max_pixels {
                    anyhow::bail!(
                        "--min-pixels {} and --max-pixels {}: need 0 < min <= max",
                        p.min_pixels,
                        p.max_pixels
                    );
                }
                Ok(ImageProcessor::Qwen2Vl(p))
            }
            ImageProcessor::LlavaNext(_) => anyhow::bail!(
                "--min-pixels/--max-pixels set a Qwen2-VL processor's budget; a LLaVA-NeXT image's size is set by \
                 image_grid_pinpoints in its preprocessor_config.json"
            ),
        }
    }
}

/// A vision-language checkpoint with its image processor.
pub enum VisionLanguageModel {
    Qwen2_5Vl { model: Box<Qwen2_5_VLForConditionalGeneration>, processor: Qwen2VlImageProcessorConfig },
    LlavaNext { model: Box<LlavaNextForConditionalGeneration>, processor: LlavaNextImageProcessorConfig },
}

/// One image after its family's processor.
#[derive(Debug, Clone)]
pub enum Pixels {
    Qwen2Vl(ImageInput),
    LlavaNext(LlavaImage),
}

/// An image of a batch: pixels for the vision tower, or the features it gave for them earlier
/// ([image tokens, hidden]; interventions act on the LM only, so repeated passes reuse them).
#[derive(Clone, Copy)]
pub enum ImageSource<'a> {
    Pixels(&'a Pixels),
    Features(&'a [f32]),
}

/// Where one image's features sit: rows [first, first + rows) of `buffer`.
struct FeatureRows {
    buffer: wgpu::Buffer,
    first: usize,
    rows: usize,
}

/// The classes this module runs, for error messages.
pub const VISION_LANGUAGE_CLASSES: &str = "Qwen2_5_VLForConditionalGeneration, LlavaNextForConditionalGeneration";

impl VisionLanguageModel {
    /// Reads the config and the image processor's settings first (cheap, and where bad
    /// checkpoints fail), then uploads the weights.
    pub fn load(gpu: &Arc<Gpu>, dir: &Path) -> anyhow::Result<VisionLanguageModel> {
        let processor = ImageProcessor::load(&ModelConfig::load(dir)?, dir)?;
        Self::load_with(gpu, dir, processor)
    }

    /// Uploads the weights of `dir`, whose image processor has been read already.
    pub fn load_with(gpu: &Arc<Gpu>, dir: &Path, processor: ImageProcessor) -> anyhow::Result<VisionLanguageModel> {
        Ok(match processor {
            ImageProcessor::Qwen2Vl(processor) => VisionLanguageModel::Qwen2_5Vl {
                model: Box::new(Qwen2_5_VLForConditionalGeneration::load(gpu, dir)?),
                processor,
            },
            ImageProcessor::LlavaNext(processor) => VisionLanguageModel::LlavaNext {
                model: Box::new(LlavaNextForConditionalGeneration::load(gpu, dir)?),
                processor,
            },
        })
    }

    /// (min_pixels, max_pixels) of the image processor, where it has them (Qwen2.5-VL).
    pub fn pixel_bounds(&self) -> Option<(usize, usize)> {
        match self {
            VisionLanguageModel::Qwen2_5Vl { processor, .. } => Some((processor.min_pixels, processor.max_pixels)),
            VisionLanguageModel::LlavaNext { .. } => None,
        }
    }

    pub fn config(&self) -> &ModelConfig {
        match self {
            VisionLanguageModel::Qwen2_5Vl { model, .. } => &model.config,
            VisionLanguageModel::LlavaNext { model, .. } => &model.config,
        }
    }

    /// The language model: where the neurons, their statistics and interventions live.
    pub fn decoder(&self) -> &Decoder {
        match self {
            VisionLanguageModel::Qwen2_5Vl { model, .. } => &model.model,
            VisionLanguageModel::LlavaNext { model, .. } => &model.model,
        }
    }

    /// The token id whose runs the image features replace.
    pub fn image_token_id(&self) -> u32 {
        match self {
            VisionLanguageModel::Qwen2_5Vl { model, .. } => model.visual.config.image_token_id,
            VisionLanguageModel::LlavaNext { model, .. } => model.llava.image_token_index,
        }
    }

    /// The processor's pixels for one RGB image and the number of image tokens its prompt needs.
    /// For LLaVA-NeXT the processor (preprocessor_config.json) and the model (config.json) count
    /// separately, as in HF; a disagreement is an error here, before any work.
    pub fn process_image(&self, rgb: &RgbImage) -> anyhow::Result<(Pixels, usize)> {
        match self {
            VisionLanguageModel::Qwen2_5Vl { model, processor } => {
                let p = qwen_preprocess(rgb, processor)?;
                let vc = &model.visual.config;
                let patches = p.grid_thw.iter().product::<usize>();
                // The tower keeps [patches, width] buffers (pixels, hidden states, merger input).
                let width = vc.patch_dim().max(vc.hidden_size).max(vc.out_hidden_size / vc.merge_unit());
                let (bytes, limit) = ((patches * width * 4) as u64, self.decoder().gpu().max_binding_bytes);
                if bytes > limit {
                    anyhow::bail!(
                        "an image of {}x{} (HxW) becomes {patches} patches under max_pixels {}; the vision tower's \
                         [patches, {width}] buffers need {bytes} bytes, past this adapter's binding limit of {limit}: \
                         lower --max-pixels",
                        rgb.height(),
                        rgb.width(),
                        processor.max_pixels
                    );
                }
                let tokens = patches / vc.merge_unit();
                Ok((Pixels::Qwen2Vl(ImageInput { pixel_values: p.pixel_values, grid_thw: p.grid_thw }), tokens))
            }
            VisionLanguageModel::LlavaNext { model, processor } => {
                let px = crate::vision::llava_next::preprocess(rgb, processor)?;
                let (h, w) = px.image_size_hw;
                let l = &model.llava;
                let (gh, gw) = anyres_grid_shape(px.image_size_hw, &l.image_grid_pinpoints, l.vision.image_size);
                if px.size != l.vision.image_size || px.n_crops != 1 + gh * gw {
                    anyhow::bail!(
                        "an image of {h}x{w} (HxW) becomes {} crops of {} px under the image processor's settings, \
                         but the model (config.json: image_grid_pinpoints, vision image_size {}) expects {} crops",
                        px.n_crops,
                        px.size,
                        l.vision.image_size,
                        1 + gh * gw
                    );
                }
                let tokens = num_image_tokens(px.image_size_hw, processor, l.vision.patch_size, "default");
                let image =
                    LlavaImage { pixel_values: px.pixel_values, crops: px.n_crops, image_size_hw: px.image_size_hw };
                let features = model.packing_order(&image).len();
                if features != tokens {
                    anyhow::bail!(
                        "an image of {h}x{w} (HxW) expands to {tokens} image tokens under the image processor's \
                         settings but the model packs {features} features for it: image_grid_pinpoints or the \
                         patch size of the processor config and config.json disagree"
                    );
                }
                Ok((Pixels::LlavaNext(image), tokens))
            }
        }
    }

    /// Packs prompts (ids with image placeholders expanded, each with its image) with the
    /// family's positions: M-RoPE (t, h, w) for Qwen2.5-VL, 0, 1, 2, … for LLaVA-NeXT. No token
    /// is counted in statistics until the caller assigns groups.
    pub fn pack(&self, prompts: &[(&[u32], Option<&Pixels>)]) -> anyhow::Result<PackedBatch> {
        match self {
            VisionLanguageModel::Qwen2_5Vl { model, .. } => {
                let images: Vec<Vec<ImageInput>> = prompts
                    .iter()
                    .map(|(_, img)| match img {
                        None => Ok(Vec::new()),
                        Some(Pixels::Qwen2Vl(i)) => Ok(vec![i.clone()]),
                        Some(_) => Err(wrong_family()),
                    })
                    .collect::<anyhow::Result<_>>()?;
                let vl: Vec<VlPrompt<'_>> =
                    prompts.iter().zip(&images).map(|((ids, _), images)| VlPrompt { ids, images }).collect();
                Ok(model.pack(&vl)?.batch)
            }
            VisionLanguageModel::LlavaNext { .. } => {
                let seqs: Vec<Vec<u32>> = prompts.iter().map(|(ids, _)| ids.to_vec()).collect();
                Ok(PackedBatch::from_sequences(&seqs))
            }
        }
    }

    /// Records the vision tower (and projector) over `images`, in order.
    fn record_image_features(&self, rec: &mut Recorder, images: &[&Pixels]) -> anyhow::Result<Vec<FeatureRows>> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            VisionLanguageModel::Qwen2_5Vl { model, .. } => {
                let inputs: Vec<&ImageInput> = images
                    .iter()
                    .map(|p| match p {
                        Pixels::Qwen2Vl(i) => Ok(i),
                        _ => Err(wrong_family()),
                    })
                    .collect::<anyhow::Result<_>>()?;
                // One tower pass per group of images whose [patches, width] buffers fit a binding.
                let vc = &model.visual.config;
                let per_patch = (vc.patch_dim().max(vc.hidden_size) * 4) as u64;
                let fits = (model.model.gpu().max_binding_bytes / per_patch).max(1) as usize;
                let patches = |i: &ImageInput| i.grid_thw.iter().product::<usize>();
                let mut out = Vec::with_capacity(inputs.len());
                let mut start = 0;
                while start < inputs.len() {
                    let mut end = start + 1;
                    let mut n = patches(inputs[start]);
                    while end < inputs.len() && n + patches(inputs[end]) <= fits {
                        n += patches(inputs[end]);
                        end += 1;
                    }
                    let group = &inputs[start..end];
                    let pixels: Vec<f32> = group.iter().flat_map(|i| i.pixel_values.iter().copied()).collect();
                    let grids: Vec<[usize; 3]> = group.iter().map(|i| i.grid_thw).collect();
                    let (buffer, _) = model.visual.forward(rec, &pixels, &grids, None)?;
                    let mut first = 0;
                    for g in &grids {
                        let rows = g.iter().product::<usize>() / vc.merge_unit();
                        out.push(FeatureRows { buffer: buffer.clone(), first, rows });
                        first += rows;
                    }
                    start = end;
                }
                Ok(out)
            }
            VisionLanguageModel::LlavaNext { model, .. } => images
                .iter()
                .map(|p| match p {
                    Pixels::LlavaNext(img) => {
                        let (buffer, rows) = model.record_image_features(rec, img)?;
                        Ok(FeatureRows { buffer, first: 0, rows })
                    }
                    _ => Err(wrong_family()),
                })
                .collect(),
        }
    }

    /// The features of each image, [image tokens · hidden] on the host, for reuse across passes.
    pub fn image_features(&self, images: &[&Pixels]) -> anyhow::Result<Vec<Vec<f32>>> {
        let gpu = self.decoder().gpu();
        let h = self.config().text.hidden_size;
        let mut rec = Recorder::new(gpu);
        let rows = self.record_image_features(&mut rec, images)?;
        rec.finish()?;
        rows.iter().map(|r| Ok(gpu.read(&r.buffer, (r.first * h) as u64, r.rows * h)?)).collect()
    }

    /// Prefill of a packed batch: token embeddings, each image's features over its run of
    /// image tokens (the i-th run of the batch takes `images[i]`), then the decoder.
    pub fn forward(
        &self,
        batch: &PackedBatch,
        images: &[ImageSource<'_>],
        cache: &mut KvCache,
        opts: &ForwardOptions<'_>,
    ) -> anyhow::Result<ForwardOutput> {
        let decoder = self.decoder();
        let gpu = decoder.gpu();
        let h = self.config().text.hidden_size;
        let mut rec = Recorder::new(gpu);
        let runs: Vec<(usize, usize)> = (0..batch.num_sequences())
            .flat_map(|s| {
                let r = batch.sequence(s);
                image_token_runs(&batch.tokens[r.clone()], self.image_token_id())
                    .into_iter()
                    .map(move |(start, len)| (r.start + start, len))
            })
            .collect();
        if runs.len() != images.len() {
            anyhow::bail!("the batch has {} runs of image tokens but {} images were given", runs.len(), images.len());
        }
        let fresh: Vec<&Pixels> = images
            .iter()
            .filter_map(|i| match i {
                ImageSource::Pixels(p) => Some(*p),
                ImageSource::Features(_) => None,
            })
            .collect();
        let mut fresh = self.record_image_features(&mut rec, &fresh)?.into_iter();
        let cached: Vec<f32> = images
            .iter()
            .filter_map(|i| match i {
                ImageSource::Features(f) => Some(f.iter().copied()),
                ImageSource::Pixels(_) => None,
            })
            .flatten()
            .collect();
        let cached = if cached.is_empty() {
            None
        } else {
            // Only copied from: a transfer buffer, which may exceed a binding.
            let b = gpu.transfer_buffer("image features", (cached.len() * 4) as u64)?;
            gpu.write_padded(&b, 0, bytemuck::cast_slice(&cached));
            Some(b)
        };
        let mut cached_row = 0;
        let mut features = Vec::with_capacity(images.len());
        for (image, &(start, len)) in images.iter().zip(&runs) {
            let rows = match image {
                ImageSource::Pixels(_) => fresh.next().context("one feature block per fresh image")?,
                ImageSource::Features(f) => {
                    anyhow::ensure!(f.len() % h == 0, "cached image features are not whole rows of {h}");
                    let rows = f.len() / h;
                    let buffer = cached.clone().context("cached features were uploaded")?;
                    cached_row += rows;
                    FeatureRows { buffer, first: cached_row - rows, rows }
                }
            };
            if rows.rows != len {
                anyhow::bail!("an image gives {} features but its prompt holds {len} image tokens", rows.rows);
            }
            features.push((rows, start));
        }
        let splices: Vec<Splice<'_>> = features
            .iter()
            .map(|(f, dst_row)| Splice { src: &f.buffer, src_row: f.first, dst_row: *dst_row, rows: f.rows })
            .collect();
        decoder.prefill(rec, batch, &splices, cache, opts)
    }
}

fn wrong_family() -> anyhow::Error {
    anyhow::anyhow!("an image preprocessed for another model family was given to this model")
}
