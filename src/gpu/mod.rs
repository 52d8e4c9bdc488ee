//! The wgpu side of the engine: adapter choice, buffers (split past binding limits), the one
//! pipeline cache, command recording and readback.

mod context;
pub mod memory;
mod pipelines;
mod precision;
mod profiler;
mod recorder;
mod tensor;

pub use context::{AdapterReport, AdapterSelector, Gpu, GpuError};
pub use pipelines::{PipelineCache, ShaderKey};
pub use precision::{fast_support, Precision, PrecisionRequest};
pub use profiler::{by_kernel, KernelTime, KernelTotal, Profiler};
pub use recorder::{Binding, Recorder};
pub use tensor::{WeightChunk, WeightDType, WeightTensor};
