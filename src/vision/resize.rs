//! Antialiased bicubic resize of an 8-bit RGB image, bit-exact with what HF's torchvision-backed processors
//! get from `tvF.resize(uint8_tensor, size, BICUBIC, antialias=True)` on CPU.
//!
//! torchvision does not convert to float for bicubic on CPU: it calls PyTorch's native uint8 kernel
//! (`_upsample_bicubic2d_aa`), which is Pillow's two-pass scheme with integer arithmetic:
//! - the width is resampled first, into an 8-bit intermediate image, then the height; an axis whose size
//!   does not change is skipped;
//! - per output pixel, the taps are Keys' cubic (a = -0.5) stretched by the downscale factor, computed in
//!   f64 and normalised to sum to 1;
//! - the weights are then turned into int16 with one fixed-point precision per axis (the largest that keeps
//!   the biggest weight below 2^15), and each output is `clamp((2^(p-1) + sum(px * w)) >> p, 0, 255)`.
//!
//! Rounding the intermediate to 8 bits and the fixed-point weights are why a float resize would be off by up
//! to a few grey levels; reproducing them reproduces HF's tensor bit for bit (checked on the fixture).

use image::RgbImage;

/// Per output pixel along one axis: the first input index, and its int16-ranged weights.
struct AxisTaps {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
    precision: u32,
}

// Keys' cubic convolution with a = -0.5, in the operation order PyTorch uses, so weights agree to the bit.
fn keys_cubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
    } else {
        0.0
    }
}

fn axis_taps(in_size: usize, out_size: usize) -> AxisTaps {
    let scale = in_size as f64 / out_size as f64;
    let (support, inv_scale) = if scale >= 1.0 { (2.0 * scale, 1.0 / scale) } else { (2.0, 1.0) };
    let max_taps = support.ceil() as i64 * 2 + 1;

    let mut first = Vec::with_capacity(out_size);
    let mut float_weights = Vec::with_capacity(out_size);
    let mut wt_max = 0.0f64;
    for i in 0..out_size {
        let center = scale * (i as f64 + 0.5);
        // `as i64` truncates toward zero, like the C++ static_cast it mirrors.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
        let xsize = (xmax - xmin).clamp(0, max_taps);
        let mut w: Vec<f64> = (0..xsize).map(|j| keys_cubic(((j + xmin) as f64 - center + 0.5) * inv_scale)).collect();
        let total: f64 = w.iter().fold(0.0, |acc, v| acc + v);
        if total != 0.0 {
            for v in &mut w {
                *v /= total;
                wt_max = wt_max.max(*v);
            }
        }
        first.push(xmin as usize);
        float_weights.push(w);
    }

    let mut precision = 0u32;
    while precision < 22 {
        let next = (0.5 + wt_max * (1i64 << (precision + 1)) as f64) as i32;
        if next >= 1 << 15 {
            break;
        }
        precision += 1;
    }
    let unit = (1i64 << precision) as f64;
    let weights = float_weights
        .iter()
        .map(|w| {
            w.iter()
                .map(|&v| {
                    let v = v * unit;
                    let rounded = if v < 0.0 { (-0.5 + v) as i32 } else { (0.5 + v) as i32 };
                    i32::from(rounded as i16)
                })
                .collect()
        })
        .collect();
    AxisTaps { first, weights, precision }
}

// One output pixel: the three channels of `count` input pixels `step` bytes apart, starting at `base`.
fn convolve_rgb(src: &[u8], base: usize, step: usize, weights: &[i32], precision: u32) -> [u8; 3] {
    let mut acc = [1i32 << (precision - 1); 3];
    for (j, &w) in weights.iter().enumerate() {
        let px = &src[base + j * step..][..3];
        for c in 0..3 {
            acc[c] += i32::from(px[c]) * w;
        }
    }
    acc.map(|a| (a >> precision).clamp(0, 255) as u8)
}

fn resize_width(src: &RgbImage, out_w: u32) -> RgbImage {
    let taps = axis_taps(src.width() as usize, out_w as usize);
    let (raw, row_len) = (src.as_raw(), src.width() as usize * 3);
    let mut out = Vec::with_capacity(out_w as usize * 3 * src.height() as usize);
    for y in 0..src.height() as usize {
        for x in 0..out_w as usize {
            let base = y * row_len + taps.first[x] * 3;
            out.extend(convolve_rgb(raw, base, 3, &taps.weights[x], taps.precision));
        }
    }
    RgbImage::from_raw(out_w, src.height(), out).expect("buffer sized for the image")
}

fn resize_height(src: &RgbImage, out_h: u32) -> RgbImage {
    let taps = axis_taps(src.height() as usize, out_h as usize);
    let (raw, row_len) = (src.as_raw(), src.width() as usize * 3);
    let mut out = Vec::with_capacity(row_len * out_h as usize);
    for y in 0..out_h as usize {
        for x in 0..src.width() as usize {
            let base = taps.first[y] * row_len + x * 3;
            out.extend(convolve_rgb(raw, base, row_len, &taps.weights[y], taps.precision));
        }
    }
    RgbImage::from_raw(src.width(), out_h, out).expect("buffer sized for the image")
}

/// Resizes to `out_w` x `out_h` (both non-zero) with torchvision's uint8 antialiased bicubic.
pub fn resize_bicubic_antialias(src: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    assert!(out_w > 0 && out_h > 0 && src.width() > 0 && src.height() > 0, "resize needs non-empty sizes");
    let mut img = if out_w != src.width() { resize_width(src, out_w) } else { src.clone() };
    if out_h != img.height() {
        img = resize_height(&img, out_h);
    }
    img
}
