//! culturelens: a wgpu transformer runtime with hand-written WGSL kernels, built to find, score
//! and ablate culture-sensitive neurons in vision-language models.

pub mod bench;
pub mod eval;
pub mod gpu;
pub mod models;
pub mod neurons;
pub mod ops;
pub mod pipeline;
pub mod plant;
pub mod report;
pub mod runner;
pub mod text;
pub mod util;
pub mod vision;
pub mod weights;
