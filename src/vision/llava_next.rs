//! LLaVA-NeXT ("AnyRes") image preprocessing, matching HF transformers 5.x's default (torchvision-backed)
//! `LlavaNextImageProcessor`, plus the arithmetic its processor and model use to count and unpad image tokens.
//!
//! What HF does with one image of H x W (all resizes are torchvision's uint8 antialiased bicubic, which
//! `resize_bicubic_antialias` reproduces bit for bit):
//! 1. `select_best_resolution` picks a `[h, w]` from `image_grid_pinpoints`;
//! 2. the image is resized to fit it keeping its aspect ratio (`get_patch_output_size`), then zero-padded
//!    to exactly that size, centred, the odd pixel going to the bottom/right;
//! 3. the padded canvas is cut into `crop_size.height` squares, row-major;
//! 4. the whole original image, squashed (not aspect-preserving) to shortest_edge x shortest_edge, goes first;
//! 5. every piece then gets the ordinary CLIP steps: shortest-edge resize, centre crop, then the fused
//!    rescale+normalise in f32.
//!
//! The padding is black in uint8 (0), so after normalisation it reads `-mean / std`, not 0.

use std::path::Path;

use image::{Rgb, RgbImage};
use serde_json::{Map, Value};

use super::resize::resize_bicubic_antialias;
use super::ImageError;

/// PIL's BICUBIC, the only `resample` implemented (what every LLaVA-NeXT checkpoint uses).
const RESAMPLE_BICUBIC: u64 = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct LlavaNextImageProcessorConfig {
    /// `size["shortest_edge"]`; also the side of the squashed base image.
    pub shortest_edge: usize,
    /// `(height, width)`; its height is also the side of the AnyRes crops cut from the padded canvas.
    pub crop_size: (usize, usize),
    /// Candidate canvases, each `[height, width]`.
    pub image_grid_pinpoints: Vec<[usize; 2]>,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    /// f64 because HF folds `1.0 / rescale_factor` in Python doubles before it reaches f32.
    pub rescale_factor: f64,
    pub do_resize: bool,
    pub do_center_crop: bool,
    pub do_rescale: bool,
    pub do_normalize: bool,
    /// Pads the crop count across a batch; a single image never needs it, so it is only recorded.
    pub do_pad: bool,
    /// PIL resample code; only 3 (bicubic) is accepted.
    pub resample: u64,
}

impl Default for LlavaNextImageProcessorConfig {
    /// HF's class defaults, used for every key a preprocessor_config.json leaves out.
    #[allow(clippy::excessive_precision)]
    fn default() -> Self {
        Self {
            shortest_edge: 224,
            crop_size: (224, 224),
            image_grid_pinpoints: vec![[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
            image_mean: [0.48145466, 0.4578275, 0.40821073],
            image_std: [0.26862954, 0.26130258, 0.27577711],
            rescale_factor: 1.0 / 255.0,
            do_resize: true,
            do_center_crop: true,
            do_rescale: true,
            do_normalize: true,
            do_pad: true,
            resample: RESAMPLE_BICUBIC,
        }
    }
}

impl LlavaNextImageProcessorConfig {
    /// Reads `preprocessor_config.json`, or, for checkpoints saved by newer transformers, the
    /// `image_processor` section of `processor_config.json`.
    pub fn load(model_dir: &Path) -> Result<Self, ImageError> {
        let (path, obj) = super::read_processor_config(model_dir)?;
        Self::from_json(&obj).map_err(|reason| ImageError::Config { path, reason })
    }

    fn from_json(obj: &Map<String, Value>) -> Result<Self, String> {
        let mut cfg = Self::default();
        let present = |key: &str| obj.get(key).filter(|v| !v.is_null());
        let flag = |key: &str, default: bool| match present(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or(format!("\"{key}\" must be true or false")),
        };
        let triple = |key: &str, default: [f32; 3]| match present(key) {
            None => Ok(default),
            Some(Value::Number(n)) => Ok([n.as_f64().unwrap_or(f64::NAN) as f32; 3]),
            Some(Value::Array(a)) if a.len() == 3 && a.iter().all(Value::is_number) => {
                Ok(std::array::from_fn(|i| a[i].as_f64().unwrap_or(f64::NAN) as f32))
            }
            Some(_) => Err(format!("\"{key}\" must be a number or a list of 3 numbers")),
        };
        let as_uint = |v: &Value| v.as_u64().map(|n| n as usize);

        // HF's get_size_dict: a bare int means {"shortest_edge": n} for `size` and a square for `crop_size`.
        if let Some(size) = present("size") {
            let edge = as_uint(size).or_else(|| size.get("shortest_edge").and_then(as_uint));
            cfg.shortest_edge = edge.ok_or(
                "\"size\" must be an integer or contain \"shortest_edge\" (height/width sizes are not LLaVA-NeXT)",
            )?;
        }
        if let Some(crop) = present("crop_size") {
            let side = |k: &str| crop.get(k).and_then(as_uint);
            cfg.crop_size = match (as_uint(crop), side("height"), side("width")) {
                (Some(n), _, _) => (n, n),
                (None, Some(h), Some(w)) => (h, w),
                _ => return Err("\"crop_size\" must be an integer or contain \"height\" and \"width\"".into()),
            };
        }
        if let Some(pins) = present("image_grid_pinpoints") {
            let parse = |p: &Value| -> Option<[usize; 2]> {
                let a = p.as_array().filter(|a| a.len() == 2)?;
                Some([as_uint(&a[0])?, as_uint(&a[1])?])
            };
            cfg.image_grid_pinpoints = pins
                .as_array()
                .and_then(|a| a.iter().map(parse).collect::<Option<Vec<_>>>())
                .ok_or("\"image_grid_pinpoints\" must be a list of [height, width] integer pairs")?;
        }
        cfg.image_mean = triple("image_mean", cfg.image_mean)?;
        cfg.image_std = triple("image_std", cfg.image_std)?;
        if let Some(v) = present("rescale_factor") {
            cfg.rescale_factor = v.as_f64().ok_or("\"rescale_factor\" must be a number")?;
        }
        cfg.do_resize = flag("do_resize", cfg.do_resize)?;
        cfg.do_center_crop = flag("do_center_crop", cfg.do_center_crop)?;
        cfg.do_rescale = flag("do_rescale", cfg.do_rescale)?;
        cfg.do_normalize = flag("do_normalize", cfg.do_normalize)?;
        cfg.do_pad = flag("do_pad", cfg.do_pad)?;
        if let Some(v) = present("resample") {
            cfg.resample = v.as_u64().ok_or("\"resample\" must be a non-negative integer")?;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if self.resample != RESAMPLE_BICUBIC {
            return Err(format!("\"resample\" is {}; only 3 (bicubic) is implemented", self.resample));
        }
        if self.shortest_edge == 0 || self.crop_size.0 == 0 || self.crop_size.1 == 0 {
            return Err("size.shortest_edge and crop_size must be positive".into());
        }
        if self.image_grid_pinpoints.is_empty() || self.image_grid_pinpoints.iter().any(|p| p[0] == 0 || p[1] == 0) {
            return Err("image_grid_pinpoints must be a non-empty list of positive [height, width]".into());
        }
        if self.do_normalize && self.image_std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            return Err(format!("image_std {:?} must be finite and non-zero", self.image_std));
        }
        if self.do_rescale && (self.rescale_factor == 0.0 || !self.rescale_factor.is_finite()) {
            return Err(format!("rescale_factor {} must be finite and non-zero", self.rescale_factor));
        }
        Ok(())
    }

    /// Side of the AnyRes crops: HF's `patch_size = crop_size.height`.
    fn crop_side(&self) -> usize {
        self.crop_size.0
    }

    /// (height, width) of every entry of `pixel_values`: what the base image (shortest_edge square) becomes.
    fn output_hw(&self) -> (usize, usize) {
        if self.do_center_crop {
            self.crop_size
        } else {
            (self.shortest_edge, self.shortest_edge)
        }
    }
}

/// HF's `select_best_resolution`: the pinpoint that keeps the most of the image's pixels when the image is
/// scaled to fit inside it, ties going to the one that wastes the least area, then to the earliest.
/// Computed in f64 with truncation exactly as Python does, since `w * (W / w)` may land just below W.
/// `pinpoints` must be non-empty (the config guarantees it); an empty list yields `[0, 0]`.
pub fn select_best_resolution(orig_hw: (usize, usize), pinpoints: &[[usize; 2]]) -> [usize; 2] {
    let (oh, ow) = (orig_hw.0 as f64, orig_hw.1 as f64);
    let mut best = [0, 0];
    // Python starts from 0 and infinity, so the first pinpoint is always taken.
    let (mut max_effective, mut min_wasted) = (0u128, u128::MAX);
    for &[h, w] in pinpoints {
        let scale = (w as f64 / ow).min(h as f64 / oh);
        let (dw, dh) = ((ow * scale) as u128, (oh * scale) as u128);
        let effective = (dw * dh).min(orig_hw.0 as u128 * orig_hw.1 as u128);
        let wasted = (h as u128 * w as u128).saturating_sub(effective);
        if effective > max_effective || (effective == max_effective && wasted < min_wasted) {
            (best, max_effective, min_wasted) = ([h, w], effective, wasted);
        }
    }
    best
}

/// HF's `get_patch_output_size`: the (height, width) the image is resized to inside `target` before padding;
/// the side that limits the scale takes the target's size, the other is ceil'd (f64, as in Python).
fn fit_size(orig_hw: (usize, usize), target: [usize; 2]) -> (usize, usize) {
    let (oh, ow) = (orig_hw.0 as f64, orig_hw.1 as f64);
    let (th, tw) = (target[0], target[1]);
    let (scale_w, scale_h) = (tw as f64 / ow, th as f64 / oh);
    if scale_w < scale_h {
        (((oh * scale_w).ceil() as usize).min(th), tw)
    } else {
        (th, ((ow * scale_h).ceil() as usize).min(tw))
    }
}

/// HF `get_anyres_image_grid_shape`: (rows, cols) of `crop`-sized crops cut from the best canvas.
pub fn anyres_grid_shape(orig_hw: (usize, usize), pinpoints: &[[usize; 2]], crop: usize) -> (usize, usize) {
    let [h, w] = select_best_resolution(orig_hw, pinpoints);
    (h / crop.max(1), w / crop.max(1))
}

/// HF `unpad_image` on a feature grid of `grid_hw` for an image of `orig_hw`: the kept region as
/// (new_h, new_w, row_offset, col_offset). Along the padded axis HF keeps `[pad, len - pad)` with
/// `pad = (len - floor(len_other_scaled)) // 2`.
///
/// HF computes the scaled length as `int(round(orig * (grid / orig_other), 7))`; rounding to 7 decimals
/// only repairs float error when the exact quotient is an integer (otherwise it is at least 1/orig away
/// from one), so exact integer floor division gives the same answer for any realistic size.
/// The aspect comparison `ow / oh > gw / gh` is likewise done exactly by cross-multiplying.
pub fn unpad_region(grid_hw: (usize, usize), orig_hw: (usize, usize)) -> (usize, usize, usize, usize) {
    let (gh, gw) = (grid_hw.0 as u128, grid_hw.1 as u128);
    let (oh, ow) = (orig_hw.0.max(1) as u128, orig_hw.1.max(1) as u128);
    if ow * gh > gw * oh {
        // Wider than the grid: rows were padded.
        let new_h = (oh * gw / ow).min(gh);
        let pad = ((gh - new_h) / 2) as usize;
        (grid_hw.0 - 2 * pad, grid_hw.1, pad, 0)
    } else {
        let new_w = (ow * gh / oh).min(gw);
        let pad = ((gw - new_w) / 2) as usize;
        (grid_hw.0, grid_hw.1 - 2 * pad, 0, pad)
    }
}

/// Number of `<image>` tokens HF's `LlavaNextProcessor` expands one image into
/// (`_get_number_of_features`): the unpadded crop-grid features, one `image_newline` per kept row, and the
/// base image's patches. The vision tower is CLIP-like with one CLS token (`num_additional_image_tokens` = 1),
/// which the "default" strategy drops and any other strategy keeps.
pub fn num_image_tokens(
    orig_hw: (usize, usize),
    cfg: &LlavaNextImageProcessorConfig,
    patch_size: usize,
    vision_feature_select_strategy: &str,
) -> usize {
    // HF reads height/width off the processed pixel_values, i.e. the output side, not the crop side.
    let (h, w) = cfg.output_hw();
    let [best_h, best_w] = select_best_resolution(orig_hw, &cfg.image_grid_pinpoints);
    let (patches_h, patches_w) = (h / patch_size.max(1), w / patch_size.max(1));
    let grid = (patches_h * (best_h / h.max(1)), patches_w * (best_w / w.max(1)));
    let (new_h, new_w, _, _) = unpad_region(grid, orig_hw);
    let base = patches_h * patches_w + usize::from(vision_feature_select_strategy != "default");
    new_h * new_w + new_h + base
}

/// Output of [`preprocess`] for one image.
#[derive(Debug, Clone)]
pub struct LlavaNextPixels {
    /// `[n_crops, 3, size, size]`, row-major; crop 0 is the whole image, then the grid row by row.
    pub pixel_values: Vec<f32>,
    pub n_crops: usize,
    pub size: usize,
    /// The original (height, width), HF's `image_sizes` row.
    pub image_size_hw: (usize, usize),
}

/// Copies the `out_h` x `out_w` window whose top-left sits at (`top`, `left`) of `src`, reading zeros
/// (black) outside it; offsets may be negative. Serves HF's zero-pad-to-canvas and centre crop alike.
fn window(src: &RgbImage, top: isize, left: isize, out_h: usize, out_w: usize) -> RgbImage {
    let (sh, sw) = (src.height() as isize, src.width() as isize);
    RgbImage::from_fn(out_w as u32, out_h as u32, |x, y| {
        let (sy, sx) = (y as isize + top, x as isize + left);
        if (0..sh).contains(&sy) && (0..sw).contains(&sx) {
            *src.get_pixel(sx as u32, sy as u32)
        } else {
            Rgb([0, 0, 0])
        }
    })
}

/// HF's centre crop (torchvision backend): a crop larger than the image first zero-pads it, the extra pixel of
/// an odd difference going to the bottom/right; the offset into the (padded) image is `int(diff / 2.0)`.
fn center_crop(img: &RgbImage, crop_h: usize, crop_w: usize) -> RgbImage {
    let axis = |len: usize, crop: usize| -> isize {
        if crop > len {
            -(((crop - len) / 2) as isize)
        } else {
            ((len - crop) / 2) as isize
        }
    };
    let (h, w) = (img.height() as usize, img.width() as usize);
    window(img, axis(h, crop_h), axis(w, crop_w), crop_h, crop_w)
}

/// HF's `get_resize_output_image_size(default_to_square=False)`: the short side becomes `edge`, the long one
/// `int(edge * long / short)` (truncated, in f64).
fn shortest_edge_size(h: usize, w: usize, edge: usize) -> (usize, usize) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long = ((edge * long) as f64 / short as f64) as usize;
    if w <= h {
        (new_long, edge)
    } else {
        (edge, new_long)
    }
}

fn resize_to(img: &RgbImage, h: usize, w: usize) -> RgbImage {
    if (img.height() as usize, img.width() as usize) == (h, w) {
        return img.clone();
    }
    resize_bicubic_antialias(img, w as u32, h as u32)
}

/// Runs the whole LLaVA-NeXT image processor on one RGB image.
pub fn preprocess(img: &RgbImage, cfg: &LlavaNextImageProcessorConfig) -> Result<LlavaNextPixels, ImageError> {
    let (height, width) = (img.height() as usize, img.width() as usize);
    let fail = |reason: String| ImageError::Size { height, width, reason };
    cfg.validate().map_err(|r| fail(format!("invalid processor config: {r}")))?;
    if height == 0 || width == 0 {
        return Err(fail("image has no pixels".into()));
    }

    let best = select_best_resolution((height, width), &cfg.image_grid_pinpoints);
    let (fit_h, fit_w) = fit_size((height, width), best);
    let fitted = resize_to(img, fit_h, fit_w);
    // Centred on the canvas; divmod puts the odd pixel after the image.
    let canvas =
        window(&fitted, -(((best[0] - fit_h) / 2) as isize), -(((best[1] - fit_w) / 2) as isize), best[0], best[1]);

    let side = cfg.crop_side();
    let mut pieces = vec![resize_to(img, cfg.shortest_edge, cfg.shortest_edge)];
    // Row-major, and the last row/column may be narrower when the canvas is not a multiple of `side`.
    for top in (0..best[0]).step_by(side) {
        for left in (0..best[1]).step_by(side) {
            let (h, w) = (side.min(best[0] - top), side.min(best[1] - left));
            pieces.push(window(&canvas, top as isize, left as isize, h, w));
        }
    }

    let (out_h, out_w) = cfg.output_hw();
    if out_h != out_w {
        return Err(fail(format!("output crops of {out_h}x{out_w} are not square")));
    }
    let table = super::value_table(cfg.image_mean, cfg.image_std, cfg.rescale_factor, cfg.do_rescale, cfg.do_normalize);
    let mut pixel_values = Vec::with_capacity(pieces.len() * 3 * out_h * out_w);
    for piece in &pieces {
        let mut piece = piece.clone();
        if cfg.do_resize {
            let (h, w) = shortest_edge_size(piece.height() as usize, piece.width() as usize, cfg.shortest_edge);
            piece = resize_to(&piece, h, w);
        }
        if cfg.do_center_crop {
            piece = center_crop(&piece, cfg.crop_size.0, cfg.crop_size.1);
        }
        if (piece.height() as usize, piece.width() as usize) != (out_h, out_w) {
            // HF would fail to stack such tensors too.
            return Err(fail(format!(
                "a crop came out {}x{}, not {out_h}x{out_w}; enable do_resize and do_center_crop",
                piece.height(),
                piece.width()
            )));
        }
        for (c, lut) in table.iter().enumerate() {
            pixel_values.extend(piece.pixels().map(|p| lut[p.0[c] as usize]));
        }
    }
    Ok(LlavaNextPixels { n_crops: pieces.len(), pixel_values, size: out_h, image_size_hw: (height, width) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coded(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([x as u8 + 1, y as u8 + 1, 0]))
    }

    #[test]
    fn center_crop_truncates_the_offset() {
        // 5 -> 2 leaves 3: HF takes int(1.5) = 1 (torchvision's own center_crop would round to 2).
        let out = center_crop(&coded(5, 5), 2, 2);
        assert_eq!(out.get_pixel(0, 0).0, [2, 2, 0]);
    }

    #[test]
    fn center_crop_pads_when_the_crop_is_larger() {
        // 3 wide x 2 high into 5 x 5: left (5-3)//2 = 1, top (5-2)//2 = 1, the odd row goes to the bottom.
        let out = center_crop(&coded(3, 2), 5, 5);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(1, 1).0, [1, 1, 0]);
        assert_eq!(out.get_pixel(3, 2).0, [3, 2, 0]);
        assert_eq!(out.get_pixel(4, 2).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(1, 3).0, [0, 0, 0]);
    }

    #[test]
    fn fit_and_shortest_edge_sizes() {
        assert_eq!(fit_size((70, 130), [112, 112]), (61, 112));
        assert_eq!(fit_size((160, 90), [112, 112]), (112, 63));
        assert_eq!(fit_size((50, 400), [56, 168]), (21, 168));
        assert_eq!(fit_size((10, 10), [56, 112]), (56, 56));
        assert_eq!(shortest_edge_size(56, 40, 56), (78, 56));
        assert_eq!(shortest_edge_size(30, 100, 56), (56, 186));
    }
}
