//! Qwen2-VL / Qwen2.5-VL image preprocessing, matching HF transformers' default (torchvision-backed)
//! `Qwen2VLImageProcessor`: smart_resize -> uint8 antialiased bicubic -> fused rescale+normalise in f32 ->
//! the single frame repeated `temporal_patch_size` times -> patches in the merge-aware order the vision tower
//! reads.

use std::path::Path;

use image::RgbImage;
use serde_json::{Map, Value};

use super::resize::resize_bicubic_antialias;
use super::ImageError;

/// PIL's BICUBIC; the only `resample` this port implements (every Qwen2-VL checkpoint uses it).
const RESAMPLE_BICUBIC: u64 = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct Qwen2VlImageProcessorConfig {
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub merge_size: usize,
    pub min_pixels: usize,
    pub max_pixels: usize,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    /// Kept in f64 because HF folds `1.0 / rescale_factor` in Python doubles before it reaches f32.
    pub rescale_factor: f64,
    pub do_resize: bool,
    pub do_rescale: bool,
    pub do_normalize: bool,
    /// Informational: `load_rgb`/`decode_rgb` always yield RGB, which is what HF does when this is true.
    pub do_convert_rgb: bool,
}

impl Default for Qwen2VlImageProcessorConfig {
    /// HF's class defaults, used for every key a preprocessor_config.json leaves out.
    // The CLIP constants are spelled as in HF so they round to the same f32.
    #[allow(clippy::excessive_precision)]
    fn default() -> Self {
        Self {
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            min_pixels: 56 * 56,
            max_pixels: 28 * 28 * 1280,
            image_mean: [0.48145466, 0.4578275, 0.40821073],
            image_std: [0.26862954, 0.26130258, 0.27577711],
            rescale_factor: 1.0 / 255.0,
            do_resize: true,
            do_rescale: true,
            do_normalize: true,
            do_convert_rgb: true,
        }
    }
}

impl Qwen2VlImageProcessorConfig {
    /// Reads `preprocessor_config.json` from a model directory, or, for checkpoints saved by newer
    /// transformers, the `image_processor` section of `processor_config.json`.
    pub fn load(model_dir: &Path) -> Result<Self, ImageError> {
        let (path, obj) = super::read_processor_config(model_dir)?;
        Self::from_json(&obj).map_err(|reason| ImageError::Config { path, reason })
    }

    fn from_json(obj: &Map<String, Value>) -> Result<Self, String> {
        let mut cfg = Self::default();
        let uint = |key: &str| -> Result<Option<usize>, String> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => {
                    v.as_u64().map(|n| Some(n as usize)).ok_or(format!("\"{key}\" must be a non-negative integer"))
                }
            }
        };
        let flag = |key: &str, default: bool| -> Result<bool, String> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v.as_bool().ok_or(format!("\"{key}\" must be true or false")),
            }
        };
        let triple = |key: &str, default: [f32; 3]| -> Result<[f32; 3], String> {
            // HF accepts one float for all channels or one per channel.
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Number(n)) => Ok([n.as_f64().unwrap_or(f64::NAN) as f32; 3]),
                Some(Value::Array(a)) if a.len() == 3 && a.iter().all(Value::is_number) => {
                    Ok(std::array::from_fn(|i| a[i].as_f64().unwrap_or(f64::NAN) as f32))
                }
                Some(_) => Err(format!("\"{key}\" must be a number or a list of 3 numbers")),
            }
        };

        cfg.patch_size = uint("patch_size")?.unwrap_or(cfg.patch_size);
        cfg.temporal_patch_size = uint("temporal_patch_size")?.unwrap_or(cfg.temporal_patch_size);
        cfg.merge_size = uint("merge_size")?.unwrap_or(cfg.merge_size);

        // HF's __init__: start from `size` (newer spelling) and let explicit min/max_pixels override it.
        if let Some(size) = obj.get("size").filter(|v| !v.is_null()) {
            let size = size.as_object().ok_or("\"size\" must be an object")?;
            let edge = |k: &str| size.get(k).and_then(Value::as_u64).map(|n| n as usize);
            let (min, max) =
                (uint("min_pixels")?.or(edge("shortest_edge")), uint("max_pixels")?.or(edge("longest_edge")));
            match (min, max) {
                (Some(min), Some(max)) => (cfg.min_pixels, cfg.max_pixels) = (min, max),
                _ => return Err("\"size\" must contain \"shortest_edge\" and \"longest_edge\"".into()),
            }
        } else {
            cfg.min_pixels = uint("min_pixels")?.unwrap_or(cfg.min_pixels);
            cfg.max_pixels = uint("max_pixels")?.unwrap_or(cfg.max_pixels);
        }

        cfg.image_mean = triple("image_mean", cfg.image_mean)?;
        cfg.image_std = triple("image_std", cfg.image_std)?;
        if let Some(v) = obj.get("rescale_factor").filter(|v| !v.is_null()) {
            cfg.rescale_factor = v.as_f64().ok_or("\"rescale_factor\" must be a number")?;
        }
        cfg.do_resize = flag("do_resize", cfg.do_resize)?;
        cfg.do_rescale = flag("do_rescale", cfg.do_rescale)?;
        cfg.do_normalize = flag("do_normalize", cfg.do_normalize)?;
        cfg.do_convert_rgb = flag("do_convert_rgb", cfg.do_convert_rgb)?;

        if let Some(resample) = uint("resample")? {
            if resample as u64 != RESAMPLE_BICUBIC {
                return Err(format!("\"resample\" is {resample}; only 3 (bicubic) is implemented"));
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if self.patch_size == 0 || self.temporal_patch_size == 0 || self.merge_size == 0 {
            return Err("patch_size, temporal_patch_size and merge_size must be positive".into());
        }
        if self.do_normalize && self.image_std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            return Err(format!("image_std {:?} must be finite and non-zero", self.image_std));
        }
        if self.do_rescale && (self.rescale_factor == 0.0 || !self.rescale_factor.is_finite()) {
            return Err(format!("rescale_factor {} must be finite and non-zero", self.rescale_factor));
        }
        Ok(())
    }
}

/// HF's `smart_resize`: the (height, width) closest to the input's aspect ratio whose sides are multiples of
/// `factor` and whose area lies in [min_pixels, max_pixels] (not guaranteed for extreme ratios, as in HF).
/// Python's `round` is half-to-even, hence `round_ties_even`.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize), ImageError> {
    let fail = |reason: String| ImageError::Size { height, width, reason };
    if height == 0 || width == 0 || factor == 0 {
        return Err(fail(format!("height, width and factor ({factor}) must be positive")));
    }
    let ratio = height.max(width) as f64 / height.min(width) as f64;
    if ratio > 200.0 {
        return Err(fail(format!("absolute aspect ratio must be smaller than 200, got {ratio}")));
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let mut h_bar = (h / f).round_ties_even() as usize * factor;
    let mut w_bar = (w / f).round_ties_even() as usize * factor;
    if h_bar * w_bar > max_pixels {
        let beta = ((height * width) as f64 / max_pixels as f64).sqrt();
        h_bar = factor.max((h / beta / f).floor() as usize * factor);
        w_bar = factor.max((w / beta / f).floor() as usize * factor);
    } else if h_bar * w_bar < min_pixels {
        let beta = (min_pixels as f64 / (height * width) as f64).sqrt();
        h_bar = (h * beta / f).ceil() as usize * factor;
        w_bar = (w * beta / f).ceil() as usize * factor;
    }
    Ok((h_bar, w_bar))
}

#[derive(Debug, Clone)]
pub struct ProcessedImage {
    /// `[num_patches, 3 * temporal_patch_size * patch_size^2]`, row-major.
    pub pixel_values: Vec<f32>,
    /// `[grid_t, grid_h, grid_w]` in patches (HF's `image_grid_thw` row).
    pub grid_thw: [usize; 3],
    pub num_patches: usize,
    pub patch_dim: usize,
}

impl ProcessedImage {
    /// Placeholder tokens the image takes in the prompt: the vision tower merges merge_size^2 patches into one.
    pub fn num_merged_tokens(&self, merge_size: usize) -> usize {
        self.num_patches / (merge_size * merge_size)
    }
}

/// Runs the whole processor on one RGB image.
pub fn preprocess(img: &RgbImage, cfg: &Qwen2VlImageProcessorConfig) -> Result<ProcessedImage, ImageError> {
    cfg.validate().map_err(|reason| ImageError::Size {
        height: img.height() as usize,
        width: img.width() as usize,
        reason: format!("invalid processor config: {reason}"),
    })?;
    let (height, width) = (img.height() as usize, img.width() as usize);
    let (p, m, t) = (cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size);
    let factor = p * m;

    let resized;
    let img = if cfg.do_resize {
        let (h, w) = smart_resize(height, width, factor, cfg.min_pixels, cfg.max_pixels)?;
        if (h, w) == (height, width) {
            img
        } else {
            resized = resize_bicubic_antialias(img, w as u32, h as u32);
            &resized
        }
    } else {
        img
    };
    let (height, width) = (img.height() as usize, img.width() as usize);
    if height == 0 || width == 0 || height % factor != 0 || width % factor != 0 {
        return Err(ImageError::Size {
            height,
            width,
            reason: format!("sides must be positive multiples of patch_size * merge_size = {factor}"),
        });
    }

    let luts = super::value_table(cfg.image_mean, cfg.image_std, cfg.rescale_factor, cfg.do_rescale, cfg.do_normalize);
    let (grid_h, grid_w) = (height / p, width / p);
    let num_patches = grid_h * grid_w;
    let patch_dim = 3 * t * p * p;
    let raw = img.as_raw();
    let mut pixel_values = Vec::with_capacity(num_patches * patch_dim);
    // Row order (block_h, block_w, merge_h, merge_w) keeps each merge window's patches adjacent; inside a
    // patch the order is (channel, frame, y, x), and every frame is the same picture.
    for block_h in 0..grid_h / m {
        for block_w in 0..grid_w / m {
            for merge_h in 0..m {
                for merge_w in 0..m {
                    let (y0, x0) = ((block_h * m + merge_h) * p, (block_w * m + merge_w) * p);
                    for (ch, lut) in luts.iter().enumerate() {
                        let frame_start = pixel_values.len();
                        for y in y0..y0 + p {
                            let row = &raw[(y * width + x0) * 3..][..p * 3];
                            pixel_values.extend(row.chunks_exact(3).map(|px| lut[px[ch] as usize]));
                        }
                        // The remaining frames repeat the first.
                        for _ in 1..t {
                            pixel_values.extend_from_within(frame_start..frame_start + p * p);
                        }
                    }
                }
            }
        }
    }
    debug_assert_eq!(pixel_values.len(), num_patches * patch_dim);
    Ok(ProcessedImage { pixel_values, grid_thw: [1, grid_h, grid_w], num_patches, patch_dim })
}
