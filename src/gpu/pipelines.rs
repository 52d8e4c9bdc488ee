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
        let label = format!("{}[{}]", key.name, key.variant);
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
        pipeline
    }

    pub fn len(&self) -> usize {
        self.pipelines.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
