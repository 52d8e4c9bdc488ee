use std::sync::Arc;

use super::pipelines::PipelineCache;
use super::precision::{self, Precision, PrecisionRequest};
use super::profiler::Profiler;
use crate::ops::coop_check;
use crate::ops::matmul_coop::{CoopOps, CoopTile};

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found (no Vulkan, Metal or DX12 driver answered). Install a Vulkan driver; \
         on a machine without a GPU the CPU fallback is Mesa's lavapipe: `apt-get install mesa-vulkan-drivers`"
    )]
    NoAdapter,
    #[error("no adapter matches --device {0:?}; `culturelens devices` lists them")]
    NoMatchingAdapter(String),
    #[error("could not open device {name}: {source}")]
    RequestDevice { name: String, source: wgpu::RequestDeviceError },
    #[error("--precision fast is not available: {0}. Use --precision exact or auto")]
    NoFastMode(String),
    #[error("GPU buffer readback failed: {0}")]
    Readback(String),
    #[error("{what} needs {bytes} bytes in one binding but the device allows {limit}")]
    TooLarge { what: String, bytes: u64, limit: u64 },
}

/// How the user names an adapter: an index into `culturelens devices`, or part of its name.
#[derive(Debug, Clone, Default)]
pub enum AdapterSelector {
    #[default]
    Default,
    Index(usize),
    Name(String),
}

impl std::str::FromStr for AdapterSelector {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.parse::<usize>() {
            Ok(i) => AdapterSelector::Index(i),
            Err(_) => AdapterSelector::Name(s.to_string()),
        })
    }
}

/// Everything `culturelens devices` prints about one adapter.
#[derive(Debug, Clone)]
pub struct AdapterReport {
    pub index: usize,
    pub info: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
    pub cooperative_matrices: Vec<wgpu::CooperativeMatrixProperties>,
}

impl std::fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.info;
        writeln!(f, "[{}] {}", self.index, i.name)?;
        writeln!(
            f,
            "    backend: {:?}   type: {:?}   vendor: 0x{:04x}   device: 0x{:04x}",
            i.backend, i.device_type, i.vendor, i.device
        )?;
        writeln!(f, "    driver: {} {}", i.driver, i.driver_info)?;
        let wanted = [
            ("SHADER_F16", wgpu::Features::SHADER_F16),
            ("SUBGROUP", wgpu::Features::SUBGROUP),
            ("TIMESTAMP_QUERY", wgpu::Features::TIMESTAMP_QUERY),
            ("SHADER_INT64", wgpu::Features::SHADER_INT64),
            ("EXPERIMENTAL_COOPERATIVE_MATRIX", wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
        ];
        let have: Vec<&str> = wanted.iter().filter(|(_, b)| self.features.contains(*b)).map(|(n, _)| *n).collect();
        writeln!(f, "    compute features: {}", if have.is_empty() { "none".into() } else { have.join(", ") })?;
        let l = &self.limits;
        writeln!(
            f,
            "    limits: max_storage_buffer_binding_size {} MiB, max_buffer_size {} MiB, workgroup storage {} KiB, \
             invocations/workgroup {}, workgroups/dim {}, storage buffers/stage {}",
            l.max_storage_buffer_binding_size / (1 << 20),
            l.max_buffer_size / (1 << 20),
            l.max_compute_workgroup_storage_size / 1024,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroups_per_dimension,
            l.max_storage_buffers_per_shader_stage,
        )?;
        writeln!(f, "    subgroup size: {}..{}", i.subgroup_min_size, i.subgroup_max_size)?;
        if self.cooperative_matrices.is_empty() {
            writeln!(f, "    cooperative matrices: none")?;
        } else {
            let shapes: Vec<String> = self
                .cooperative_matrices
                .iter()
                .map(|c| format!("{}x{}x{} {:?}->{:?}", c.m_size, c.n_size, c.k_size, c.ab_type, c.cr_type))
                .collect();
            writeln!(f, "    cooperative matrices: {}", shapes.join(", "))?;
        }
        match precision::fast_support(self.features, &self.cooperative_matrices, &self.info) {
            Ok(s) => write!(f, "    precision: fast (tensor-core matmuls, subgroup {s}) by default, exact on request"),
            Err(why) => write!(f, "    precision: exact only ({why})"),
        }
    }
}

/// An opened device with the features and limits this engine negotiated, plus the pipeline cache.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
    /// Exact or fast matmuls (docs/numerics.md), resolved from the user's request at open.
    pub precision: Precision,
    /// Fast mode's subgroup size on this adapter, or why it has no fast mode.
    pub fast_support: Result<u32, String>,
    pub pipelines: Arc<PipelineCache>,
    /// Per-kernel timestamps, off unless started (`culturelens bench`).
    pub profiler: Arc<Profiler>,
    /// When the first dispatch was submitted (startup time is measured up to it).
    pub first_dispatch: Arc<std::sync::OnceLock<std::time::Instant>>,
    /// Peak device memory, off unless started (`collect` reports it).
    pub memory: Arc<super::memory::MemoryWatch>,
    /// Largest byte size one weight chunk may have. Normally the binding limit; tests lower it to
    /// exercise the splitting path on tiny models.
    pub max_binding_bytes: u64,
    /// A tiny read-write buffer bound where a kernel's optional output is switched off.
    pub scratch: wgpu::Buffer,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    }
    wgpu::Instance::new(desc)
}

fn adapter_report(index: usize, a: &wgpu::Adapter) -> AdapterReport {
    AdapterReport {
        index,
        info: a.get_info(),
        features: a.features(),
        limits: a.limits(),
        cooperative_matrices: a.cooperative_matrix_properties(),
    }
}

/// Lists every adapter the instance sees, in the order `--device N` refers to.
pub fn list_adapters() -> Vec<AdapterReport> {
    let inst = instance();
    let adapters = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
    adapters.iter().enumerate().map(|(i, a)| adapter_report(i, a)).collect()
}

impl Gpu {
    pub fn list_adapters() -> Vec<AdapterReport> {
        list_adapters()
    }

    /// Opens the selected adapter (default: first discrete GPU, else the first one found) in
    /// the fastest mode it offers.
    pub fn new(selector: &AdapterSelector) -> Result<Arc<Gpu>, GpuError> {
        Gpu::open(selector, PrecisionRequest::Auto)
    }

    /// Opens the selected adapter in the requested compute mode.
    pub fn open(selector: &AdapterSelector, request: PrecisionRequest) -> Result<Arc<Gpu>, GpuError> {
        let inst = instance();
        let adapters = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter);
        }
        let chosen = match selector {
            AdapterSelector::Default => {
                adapters.iter().position(|a| a.get_info().device_type == wgpu::DeviceType::DiscreteGpu).unwrap_or(0)
            }
            AdapterSelector::Index(i) if *i < adapters.len() => *i,
            AdapterSelector::Index(i) => return Err(GpuError::NoMatchingAdapter(i.to_string())),
            AdapterSelector::Name(n) => {
                let n_low = n.to_lowercase();
                adapters
                    .iter()
                    .position(|a| a.get_info().name.to_lowercase().contains(&n_low))
                    .ok_or_else(|| GpuError::NoMatchingAdapter(n.clone()))?
            }
        };
        let adapter = &adapters[chosen];
        let info = adapter.get_info();
        let offered = adapter.features();
        let wanted = wgpu::Features::SHADER_F16
            | wgpu::Features::SUBGROUP
            | wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        let features = offered & wanted;
        let experimental = if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
            // SAFETY: the cooperative-matrix shaders are validated by naga in CI and only used
            // through the fast path, which the exact-mode golden tests do not depend on.
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        let fast_support = precision::fast_support(features, &adapter.cooperative_matrix_properties(), &info);
        let precision = precision::resolve(request, &fast_support).map_err(GpuError::NoFastMode)?;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("culturelens"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: experimental,
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|source| GpuError::RequestDevice { name: info.name.clone(), source })?;
        let limits = device.limits();
        let max_binding_bytes = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let scratch = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("scratch"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let gpu = Arc::new(Gpu {
            scratch,
            pipelines: Arc::new(PipelineCache::default()),
            profiler: Arc::new(Profiler::default()),
            first_dispatch: Default::default(),
            memory: Arc::default(),
            device,
            queue,
            info,
            features,
            limits,
            precision,
            fast_support,
            max_binding_bytes,
        });
        // The tensor-core kernel cannot run where CI runs, so it has to prove itself on each
        // device before fast mode is used there.
        let Precision::Fast { subgroup } = gpu.precision else { return Ok(gpu) };
        let tile = CoopTile::for_subgroup(subgroup);
        match coop_check::self_check(&gpu, tile, CoopOps::Hardware) {
            Ok(()) => Ok(gpu),
            Err(why) => {
                let why = format!("{}: the tensor-core matmul failed its self-check ({why})", gpu.info.name);
                if request == PrecisionRequest::Fast {
                    return Err(GpuError::NoFastMode(why));
                }
                eprintln!("warning: {why}; running in exact mode");
                let mut exact = gpu.derive(gpu.max_binding_bytes, Precision::Exact);
                Arc::get_mut(&mut exact).expect("just derived").fast_support = Err(why);
                Ok(exact)
            }
        }
    }

    /// The same device with a smaller split size for weights; used to test splitting.
    pub fn with_max_binding_bytes(self: &Arc<Self>, bytes: u64) -> Arc<Gpu> {
        self.derive(bytes.min(self.max_binding_bytes), self.precision)
    }

    /// The same device in another compute mode; fast fails where the adapter has none.
    pub fn with_precision(self: &Arc<Self>, request: PrecisionRequest) -> Result<Arc<Gpu>, GpuError> {
        let precision = precision::resolve(request, &self.fast_support).map_err(GpuError::NoFastMode)?;
        Ok(self.derive(self.max_binding_bytes, precision))
    }

    /// The same device with fast mode's numerics emulated (tests; see [`Precision::FastEmulated`]).
    pub fn with_emulated_fast_mode(self: &Arc<Self>) -> Arc<Gpu> {
        self.derive(self.max_binding_bytes, Precision::FastEmulated)
    }

    fn derive(&self, max_binding_bytes: u64, precision: Precision) -> Arc<Gpu> {
        Arc::new(Gpu {
            device: self.device.clone(),
            queue: self.queue.clone(),
            info: self.info.clone(),
            features: self.features,
            limits: self.limits.clone(),
            precision,
            fast_support: self.fast_support.clone(),
            pipelines: self.pipelines.clone(),
            profiler: self.profiler.clone(),
            first_dispatch: self.first_dispatch.clone(),
            memory: self.memory.clone(),
            max_binding_bytes,
            scratch: self.scratch.clone(),
        })
    }

    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    pub fn wait(&self) -> Result<(), GpuError> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map(|_| ()).map_err(|e| GpuError::Readback(e.to_string()))
    }
}
