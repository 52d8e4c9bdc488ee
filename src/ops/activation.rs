use crate::gpu::{Binding, Recorder};

use super::shaders;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    count: u32,
    kind: u32,
    _pad: [u32; 2],
}

/// Elementwise activations applied in place (HF ACT2FN names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// "gelu": the exact erf form.
    Gelu,
    /// "quick_gelu": x · sigmoid(1.702 x), CLIP's.
    QuickGelu,
}

impl Activation {
    pub fn from_hf(name: &str) -> Option<Activation> {
        match name {
            "gelu" => Some(Activation::Gelu),
            "quick_gelu" => Some(Activation::QuickGelu),
            _ => None,
        }
    }

    pub fn reference(self, x: f32) -> f32 {
        match self {
            Activation::Gelu => gelu_ref(x),
            Activation::QuickGelu => (x as f64 / (1.0 + (-1.702 * x as f64).exp())) as f32,
        }
    }
}

/// x ← act(x) over `count` elements, in place.
pub fn activation(rec: &mut Recorder, act: Activation, x: &wgpu::Buffer, count: usize) {
    let gpu = rec.gpu().clone();
    let pipeline = shaders::pipeline(&gpu, "activation", shaders::ACTIVATION);
    let groups = (count as u32).div_ceil(64);
    let params = Params { count: count as u32, kind: act as u32, _pad: [0; 2] };
    rec.dispatch(&pipeline, &params, &[Binding::Whole(x)], [groups.min(65535), groups.div_ceil(65535), 1]);
}

/// x ← GELU(x) (exact erf form) over `count` elements, in place.
pub fn gelu(rec: &mut Recorder, x: &wgpu::Buffer, count: usize) {
    activation(rec, Activation::Gelu, x, count)
}

/// torch's GELU in f64: 0.5 x (1 + erf(x / √2)), erf from its series/continued fraction.
pub fn gelu_ref(x: f32) -> f32 {
    let v = x as f64;
    (0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2))) as f32
}

/// erf to ~1e-15: Taylor series near 0, continued fraction for erfc in the tails.
pub fn erf(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 2.5 {
        let mut term = a;
        let mut sum = a;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // Lentz-free backward evaluation of erfc's continued fraction.
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (a + f);
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
    };
    r.copysign(x)
}
