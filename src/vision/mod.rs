//! Image side of a vision-language model: decoding files into RGB the way HF's loaders do, and turning an
//! RGB image into the patch tensor a vision tower expects, matching HF transformers' processors.

pub mod image_input;
pub mod llava_next;
pub mod qwen2_vl;
pub mod resize;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// Every error that concerns a file or an in-memory image names it (`origin`), so a failure deep in a
/// dataset run can be traced back to the sample that caused it.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: empty (0 bytes), not an image")]
    Empty { origin: String },
    #[error("{origin}: not a recognised image format (first bytes {head})")]
    UnknownFormat { origin: String, head: String },
    // The decoder's message is part of this one, so it is not chained as a source too.
    #[error("{origin}: cannot decode image: {cause}")]
    Decode { origin: String, cause: image::ImageError },
    #[error("{origin}: JPEG data ends before the image does (truncated file; Pillow refuses it too)")]
    Truncated { origin: String },
    #[error("{origin}: image has zero width or height ({width}x{height})")]
    ZeroSize { origin: String, width: u32, height: u32 },
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
    /// Sizes HF itself rejects (extreme aspect ratio, degenerate dimensions).
    #[error("image of {height}x{width} (HxW): {reason}")]
    Size { height: usize, width: usize, reason: String },
}

/// Reads an image processor's settings: `preprocessor_config.json`, or, for checkpoints saved by
/// newer transformers, the `image_processor` section of `processor_config.json`.
pub(crate) fn read_processor_config(model_dir: &Path) -> Result<(PathBuf, Map<String, Value>), ImageError> {
    let legacy = model_dir.join("preprocessor_config.json");
    let (path, section) = if legacy.is_file() {
        (legacy, None)
    } else {
        (model_dir.join("processor_config.json"), Some("image_processor"))
    };
    if !path.exists() {
        return Err(ImageError::Config {
            path: model_dir.to_path_buf(),
            reason: "no image processor config (looked for preprocessor_config.json and processor_config.json)".into(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ImageError::Io { path: path.clone(), source })?;
    let root: Value = serde_json::from_str(&text).map_err(|source| ImageError::Json { path: path.clone(), source })?;
    let obj = match section {
        None => root.as_object(),
        Some(key) => root.get(key).and_then(Value::as_object),
    };
    let obj = obj.cloned().ok_or_else(|| ImageError::Config {
        path: path.clone(),
        reason: format!("expected a JSON object{}", section.map(|k| format!(" under \"{k}\"")).unwrap_or_default()),
    })?;
    Ok((path, obj))
}

/// Byte → model input per channel, in HF's f32 operation order so results agree to the bit. With
/// both steps on, HF's torchvision backend fuses them: mean and std are multiplied by
/// `1 / rescale_factor` in f32, then the resized uint8 value, cast to f32, becomes `(x - mean') / std'`.
pub(crate) fn value_table(
    mean: [f32; 3],
    std: [f32; 3],
    rescale_factor: f64,
    do_rescale: bool,
    do_normalize: bool,
) -> [[f32; 256]; 3] {
    let inv = (1.0 / rescale_factor) as f32;
    std::array::from_fn(|c| {
        std::array::from_fn(|v| {
            let x = v as f32;
            match (do_rescale, do_normalize) {
                (true, true) => (x - mean[c] * inv) / (std[c] * inv),
                (true, false) => x * rescale_factor as f32,
                (false, true) => (x - mean[c]) / std[c],
                (false, false) => x,
            }
        })
    })
}
