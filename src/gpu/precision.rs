//! The two compute modes of docs/numerics.md and what an adapter needs for the fast one.

/// How matmuls run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32 FMA everywhere: logits within NMSE 1e-8 of HF's float32 reference.
    Exact,
    /// Matmuls on cooperative matrices (tensor cores) with f16 operands and f32 accumulators:
    /// NMSE ≤ 1e-3, the multiple-choice answer equal on ≥ 99 % of cases.
    Fast { subgroup: u32 },
    /// Fast mode's arithmetic (f16 operands, f32 accumulators, the same kernel and staging) with
    /// the 16x16 products emulated in scalar WGSL: runs on any adapter, so tests can hold fast
    /// mode to its tolerances where no tensor cores exist. Not a speed mode.
    FastEmulated,
}

impl Precision {
    pub fn name(&self) -> &'static str {
        match self {
            Precision::Exact => "exact",
            Precision::Fast { .. } | Precision::FastEmulated => "fast",
        }
    }
}

/// What the user asked for with `--precision`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionRequest {
    /// fast where the adapter offers f16 cooperative matrices, else exact
    #[default]
    Auto,
    /// f32 everywhere
    Exact,
    /// cooperative matrices; an error where the adapter has none
    Fast,
}

/// Whether the adapter can run fast mode: 16x16x16 cooperative matrices with f16 inputs and f32
/// accumulators, f16 and subgroups in shaders, and one fixed subgroup size (cooperative
/// matrices belong to a subgroup, and the kernel's layout is built for a known width).
/// Returns that subgroup size, or why not.
pub fn fast_support(
    features: wgpu::Features,
    coop: &[wgpu::CooperativeMatrixProperties],
    info: &wgpu::AdapterInfo,
) -> Result<u32, String> {
    let needed = [
        ("EXPERIMENTAL_COOPERATIVE_MATRIX", wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
        ("SHADER_F16", wgpu::Features::SHADER_F16),
        ("SUBGROUP", wgpu::Features::SUBGROUP),
    ];
    let missing: Vec<&str> = needed.iter().filter(|(_, f)| !features.contains(*f)).map(|(n, _)| *n).collect();
    if !missing.is_empty() {
        return Err(format!("{} lacks {}", info.name, missing.join(", ")));
    }
    let shape = coop.iter().any(|c| {
        (c.m_size, c.n_size, c.k_size) == (16, 16, 16)
            && c.ab_type == wgpu::CooperativeScalarType::F16
            && c.cr_type == wgpu::CooperativeScalarType::F32
    });
    if !shape {
        return Err(format!("{} offers no 16x16x16 f16 x f16 -> f32 cooperative matrix", info.name));
    }
    if info.subgroup_min_size != info.subgroup_max_size || info.subgroup_min_size == 0 {
        return Err(format!(
            "{} runs subgroups of {} to {} lanes; fast mode needs one fixed size",
            info.name, info.subgroup_min_size, info.subgroup_max_size
        ));
    }
    Ok(info.subgroup_min_size)
}

/// The mode a request resolves to on an adapter with `support`.
pub fn resolve(request: PrecisionRequest, support: &Result<u32, String>) -> Result<Precision, String> {
    match (request, support) {
        (PrecisionRequest::Exact, _) | (PrecisionRequest::Auto, Err(_)) => Ok(Precision::Exact),
        (PrecisionRequest::Auto | PrecisionRequest::Fast, Ok(s)) => Ok(Precision::Fast { subgroup: *s }),
        (PrecisionRequest::Fast, Err(why)) => Err(why.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(min: u32, max: u32) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: "test adapter".into(),
            vendor: 0,
            device: 0,
            device_type: wgpu::DeviceType::DiscreteGpu,
            device_pci_bus_id: String::new(),
            driver: String::new(),
            driver_info: String::new(),
            backend: wgpu::Backend::Vulkan,
            subgroup_min_size: min,
            subgroup_max_size: max,
            transient_saves_memory: None,
            limit_bucket: None,
        }
    }

    fn shape(ab: wgpu::CooperativeScalarType, cr: wgpu::CooperativeScalarType) -> wgpu::CooperativeMatrixProperties {
        wgpu::CooperativeMatrixProperties {
            m_size: 16,
            n_size: 16,
            k_size: 16,
            ab_type: ab,
            cr_type: cr,
            saturating_accumulation: false,
        }
    }

    #[test]
    fn fast_mode_needs_features_shape_and_a_fixed_subgroup() {
        use wgpu::CooperativeScalarType::{F16, F32};
        let all =
            wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP;
        assert_eq!(fast_support(all, &[shape(F16, F32)], &adapter(32, 32)), Ok(32));
        let no_coop = fast_support(wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP, &[], &adapter(8, 8));
        assert!(no_coop.unwrap_err().contains("EXPERIMENTAL_COOPERATIVE_MATRIX"));
        assert!(fast_support(all, &[shape(F16, F16)], &adapter(32, 32)).unwrap_err().contains("f32"));
        assert!(fast_support(all, &[shape(F16, F32)], &adapter(32, 64)).unwrap_err().contains("fixed"));
    }

    #[test]
    fn requests_resolve_per_adapter() {
        let yes: Result<u32, String> = Ok(32);
        let no: Result<u32, String> = Err("lavapipe lacks it".into());
        assert_eq!(resolve(PrecisionRequest::Auto, &yes), Ok(Precision::Fast { subgroup: 32 }));
        assert_eq!(resolve(PrecisionRequest::Auto, &no), Ok(Precision::Exact));
        assert_eq!(resolve(PrecisionRequest::Exact, &yes), Ok(Precision::Exact));
        assert_eq!(resolve(PrecisionRequest::Fast, &no), Err("lavapipe lacks it".into()));
    }
}
