//! Checkpoint access: safetensors files memory-mapped (never copied whole into host memory),
//! single-file or sharded, and model directories resolved from a path or the local HF cache.

mod hub;
mod store;

pub use hub::{resolve_dataset, resolve_model_dir};
pub use store::{TensorRef, WeightError, WeightStore};
