//! Culture-neuron scoring and selection (docs/methods.md). The statistics come from the fused SwiGLU
//! kernel; everything here is host-side arithmetic in f64.

pub mod accum;
pub mod methods;
pub mod random_control;
pub mod stats_file;

pub use methods::{GroupStats, Method};
