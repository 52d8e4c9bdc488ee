use std::collections::HashMap;
use std::sync::Mutex;

/// Identifies one compiled WGSL variant: the op's shader name plus whatever text was spliced in
/// (weight dtype, workgroup shape, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShaderKey {
    pub name: &'static str,
    pub variant: String,
}

impl ShaderKey {
    pub fn new(name: &'static str, variant: impl Into<String>) -> Self {
        ShaderKey { name, variant: variant.into() }
    }
}

/// The one place pipelines are built: each variant is compiled once per device.
#[derive(Default)]
pub struct PipelineCache {
    pipelines: Mutex<HashMap<ShaderKey, wgpu::ComputePipeline>>,
    /// `name[variant]` of each pipeline, for the profiler's per-kernel log.
    names: Mutex<HashMap<wgpu::ComputePipeline, String>>,
}

impl PipelineCache {
    /// Returns the cached pipeline for `key`, compiling `source()` on first use.
    pub fn get(
        &self,
        device: &wgpu::Device,
        key: &ShaderKey,
        source: impl FnOnce() -> String,
    ) -> wgpu::ComputePipeline {
        let mut map = self.pipelines.lock().expect("pipeline cache poisoned");
        if let Some(p) = map.get(key) {
            return p.clone();
        }
        let label =
            if key.variant.is_empty() { key.name.to_string() } else { format!("{}[{}]", key.name, key.variant) };
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(source().into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        map.insert(key.clone(), pipeline.clone());
        self.names.lock().expect("pipeline cache poisoned").insert(pipeline.clone(), label);
        pipeline
    }

    /// The `name[variant]` a pipeline was built under.
    pub fn name_of(&self, pipeline: &wgpu::ComputePipeline) -> String {
        let names = self.names.lock().expect("pipeline cache poisoned");
        names.get(pipeline).cloned().unwrap_or_else(|| "unnamed".into())
    }

    pub fn len(&self) -> usize {
        self.pipelines.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
