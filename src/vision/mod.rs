//! Image side of a vision-language model: decoding files into RGB the way HF's loaders do, and turning an
//! RGB image into the patch tensor a vision tower expects, matching HF transformers' processors.

pub mod image_input;
pub mod llava_next;
pub mod qwen2_vl;
pub mod resize;

use std::path::PathBuf;

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
    #[error("{origin}: cannot decode image: {source}")]
    Decode {
        origin: String,
        #[source]
        source: image::ImageError,
    },
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
