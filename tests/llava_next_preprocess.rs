//! LLaVA-NeXT (AnyRes) preprocessing against HF's own output (golden.safetensors, transformers 5.24 with the
//! torchvision backend), the processor's image-token count, and the AnyRes arithmetic on hand-derived cases.

use std::path::{Path, PathBuf};

use culturelens::vision::image_input::load_rgb;
use culturelens::vision::llava_next::{
    anyres_grid_shape, num_image_tokens, preprocess, select_best_resolution, unpad_region,
    LlavaNextImageProcessorConfig,
};
use image::{Rgb, RgbImage};

/// The fixtures' pinpoints ([h, w]), shared by both cases.
const PINS: [[usize; 2]; 5] = [[56, 112], [112, 56], [112, 112], [56, 168], [168, 56]];

fn fixture_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(case)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("llava_next_preprocess").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn golden(case: &str, name: &str) -> (Vec<usize>, safetensors::Dtype, Vec<u8>) {
    let path = fixture_dir(case).join("golden.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{case}: golden tensor {name}: {e}"));
    (t.shape().to_vec(), t.dtype(), t.data().to_vec())
}

fn golden_f32(case: &str, name: &str) -> (Vec<usize>, Vec<f32>) {
    let (shape, dtype, data) = golden(case, name);
    assert_eq!(dtype, safetensors::Dtype::F32, "{name}");
    (shape, data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
}

fn golden_i64(case: &str, name: &str) -> (Vec<usize>, Vec<i64>) {
    let (shape, dtype, data) = golden(case, name);
    assert_eq!(dtype, safetensors::Dtype::I64, "{name}");
    (shape, data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect())
}

fn case_json(case: &str) -> serde_json::Value {
    let path = fixture_dir(case).join("case.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn abs_diff_stats(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let mean = a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs())).sum::<f64>() / a.len() as f64;
    (max, mean as f32)
}

fn check_fixture(case: &str, expected_wh: (u32, u32), expected_tokens: usize) {
    let dir = fixture_dir(case);
    let cfg = LlavaNextImageProcessorConfig::load(&dir).unwrap();
    let img = load_rgb(&dir.join("image.png")).unwrap();
    assert_eq!(img.dimensions(), expected_wh);
    let out = preprocess(&img, &cfg).unwrap();

    let (shape, gold) = golden_f32(case, "pixel_values");
    assert_eq!(shape, vec![out.n_crops, 3, out.size, out.size], "{case}: pixel_values shape");
    assert_eq!((out.n_crops, out.size), (5, 56));
    assert_eq!(out.pixel_values.len(), gold.len());
    let (max, mean) = abs_diff_stats(&out.pixel_values, &gold);
    let (pil_max, pil_mean) = abs_diff_stats(&out.pixel_values, &golden_f32(case, "pixel_values_pil").1);
    println!("{case}: vs torchvision golden max abs {max:e}, mean abs {mean:e}");
    println!("{case}: vs PIL-backend golden max abs {pil_max:e}, mean abs {pil_mean:e}");
    for crop in 0..out.n_crops {
        let n = 3 * out.size * out.size;
        let (m, _) = abs_diff_stats(&out.pixel_values[crop * n..][..n], &gold[crop * n..][..n]);
        println!("{case}: crop {crop} max abs {m:e}");
    }
    assert!(max <= 1e-5, "{case}: max abs diff {max} (mean {mean})");
    assert!(mean <= 1e-6, "{case}: mean abs diff {mean}");

    let (size_shape, sizes) = golden_i64(case, "image_sizes");
    assert_eq!(size_shape, vec![1, 2]);
    assert_eq!(sizes, vec![out.image_size_hw.0 as i64, out.image_size_hw.1 as i64]);
    assert_eq!(out.image_size_hw, (expected_wh.1 as usize, expected_wh.0 as usize));

    // The processor's token count, against case.json and against the ids HF actually produced.
    let case_info = case_json(case);
    let proc_path = dir.join("processor_config.json");
    let proc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&proc_path).unwrap()).unwrap();
    let patch_size = proc["patch_size"].as_u64().unwrap() as usize;
    let strategy = proc["vision_feature_select_strategy"].as_str().unwrap();
    let tokens = num_image_tokens(out.image_size_hw, &cfg, patch_size, strategy);
    assert_eq!(tokens, expected_tokens);
    assert_eq!(tokens as u64, case_info["num_image_tokens"].as_u64().unwrap());
    let image_token_id = case_info["image_token_id"].as_i64().unwrap();
    let (_, ids) = golden_i64(case, "input_ids");
    assert_eq!(ids.iter().filter(|&&t| t == image_token_id).count(), tokens);
}

#[test]
fn mistral_fixture_matches_hf() {
    // 130 x 70 (w x h): best canvas 112 x 112, image fitted to 61 x 112, 2 x 2 crops + base.
    check_fixture("llava_next-mistral-tiny", (130, 70), 52);
}

#[test]
fn qwen2_fixture_matches_hf() {
    // 90 x 160 (w x h): best canvas 112 x 112, image fitted to 112 x 63, 2 x 2 crops + base.
    check_fixture("llava_next-qwen2-tiny", (90, 160), 56);
}

#[test]
fn config_reads_fixture_and_spellings() {
    let cfg = LlavaNextImageProcessorConfig::load(&fixture_dir("llava_next-mistral-tiny")).unwrap();
    assert_eq!((cfg.shortest_edge, cfg.crop_size), (56, (56, 56)));
    assert_eq!(cfg.image_grid_pinpoints, PINS.to_vec());
    assert_eq!(cfg.rescale_factor, 0.00392156862745098);
    assert!(cfg.do_resize && cfg.do_center_crop && cfg.do_rescale && cfg.do_normalize && cfg.do_pad);
    assert_eq!(cfg.resample, 3);

    // Newer checkpoints: processor_config.json's image_processor section; bare ints for size and crop_size.
    let dir = scratch("processor_json");
    std::fs::write(
        dir.join("processor_config.json"),
        r#"{"image_processor": {"size": 336, "crop_size": 336, "image_grid_pinpoints": [[336, 672]]}}"#,
    )
    .unwrap();
    let cfg = LlavaNextImageProcessorConfig::load(&dir).unwrap();
    assert_eq!((cfg.shortest_edge, cfg.crop_size), (336, (336, 336)));
    assert_eq!(cfg.image_grid_pinpoints, vec![[336, 672]]);
    assert_eq!(cfg.image_std, LlavaNextImageProcessorConfig::default().image_std);

    let bad = [
        (r#"{"resample": 2}"#, "resample"),
        (r#"{"image_grid_pinpoints": []}"#, "image_grid_pinpoints"),
        (r#"{"image_grid_pinpoints": [[336]]}"#, "image_grid_pinpoints"),
        (r#"{"size": {"height": 384, "width": 384}}"#, "shortest_edge"),
    ];
    for (json, what) in bad {
        let dir = scratch("bad");
        std::fs::write(dir.join("preprocessor_config.json"), json).unwrap();
        let err = LlavaNextImageProcessorConfig::load(&dir).unwrap_err().to_string();
        assert!(err.contains("preprocessor_config.json") && err.contains(what), "{json}: {err}");
    }
    let err = LlavaNextImageProcessorConfig::load(&scratch("missing")).unwrap_err().to_string();
    assert!(err.contains("processor_config.json"), "{err}");
}

#[test]
fn select_best_resolution_hand_cases() {
    // 70 x 130 (h x w): [112, 112] keeps 60 x 112 = 6720 pixels, more than [56, 112] or [56, 168] (56 x 104).
    assert_eq!(select_best_resolution((70, 130), &PINS), [112, 112]);
    // 160 x 90: [112, 112] keeps 112 x 63; [112, 56] and [168, 56] only 99 x 56.
    assert_eq!(select_best_resolution((160, 90), &PINS), [112, 112]);
    // 1:8 wide, 50 x 400: [56, 168] keeps 21 x 168 = 3528, [56, 112] and [112, 112] only 14 x 112.
    assert_eq!(select_best_resolution((50, 400), &PINS), [56, 168]);
    assert_eq!(select_best_resolution((400, 50), &PINS), [168, 56]);
    // Far smaller than a crop: every pinpoint keeps all 100 pixels, so the least waste wins ([56, 112] and
    // [112, 56] tie at 6172 and the earlier one stays).
    assert_eq!(select_best_resolution((10, 10), &PINS), [56, 112]);
    assert_eq!(select_best_resolution((1, 1), &PINS), [56, 112]);
    // Large: all pinpoints downscale; [112, 112] keeps 112 x 112.
    assert_eq!(select_best_resolution((1000, 1000), &PINS), [112, 112]);
    // HF's default LLaVA-NeXT pinpoints and a 4:3 photo: 672 x 672 keeps 504 x 672.
    let hf = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]];
    assert_eq!(select_best_resolution((480, 640), &hf), [672, 672]);
}

#[test]
fn anyres_grid_shape_hand_cases() {
    assert_eq!(anyres_grid_shape((70, 130), &PINS, 56), (2, 2));
    assert_eq!(anyres_grid_shape((160, 90), &PINS, 56), (2, 2));
    assert_eq!(anyres_grid_shape((50, 400), &PINS, 56), (1, 3));
    assert_eq!(anyres_grid_shape((400, 50), &PINS, 56), (3, 1));
    assert_eq!(anyres_grid_shape((10, 10), &PINS, 56), (1, 2));
    let hf = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]];
    assert_eq!(anyres_grid_shape((480, 640), &hf, 336), (2, 2));
}

#[test]
fn unpad_region_hand_cases() {
    // 70 x 130 on an 8 x 8 grid: scaled height floor(70 * 8 / 130) = 4, pad (8 - 4) / 2 = 2 rows each side.
    assert_eq!(unpad_region((8, 8), (70, 130)), (4, 8, 2, 0));
    // 160 x 90: scaled width floor(90 * 8 / 160) = 4, 2 columns each side.
    assert_eq!(unpad_region((8, 8), (160, 90)), (8, 4, 0, 2));
    // 1:8 on a 4 x 12 grid: floor(50 * 12 / 400) = 1, pad (4 - 1) / 2 = 1, so 2 rows are kept.
    assert_eq!(unpad_region((4, 12), (50, 400)), (2, 12, 1, 0));
    assert_eq!(unpad_region((12, 4), (400, 50)), (12, 2, 0, 1));
    // Equal aspect ratios take the width branch and keep everything.
    assert_eq!(unpad_region((8, 8), (10, 10)), (8, 8, 0, 0));
    assert_eq!(unpad_region((4, 8), (10, 10)), (4, 4, 0, 2));
    // An odd leftover keeps one extra row: floor(3 * 10 / 10) = 3 of 6 rows, pad 1, keep 4.
    assert_eq!(unpad_region((6, 10), (3, 10)), (4, 10, 1, 0));
}

/// HF's float formula, `int(round(orig * (grid / orig_other), 7))`, emulated with a 7-decimal round trip.
fn hf_unpad_float(grid: (usize, usize), orig: (usize, usize)) -> (usize, usize) {
    let round7_int = |x: f64| format!("{x:.7}").parse::<f64>().unwrap() as i64;
    let (gh, gw, oh, ow) = (grid.0 as f64, grid.1 as f64, orig.0 as f64, orig.1 as f64);
    if ow / oh > gw / gh {
        let pad = (grid.0 as i64 - round7_int(oh * (gw / ow))).div_euclid(2);
        ((grid.0 as i64 - 2 * pad) as usize, grid.1)
    } else {
        let pad = (grid.1 as i64 - round7_int(ow * (gh / oh))).div_euclid(2);
        (grid.0, (grid.1 as i64 - 2 * pad) as usize)
    }
}

#[test]
fn unpad_region_agrees_with_hf_float_formula() {
    for grid in [(4, 8), (8, 4), (8, 8), (24, 48), (48, 24), (72, 72), (24, 96)] {
        for oh in (1..300).step_by(7) {
            for ow in (1..300).step_by(5) {
                let (h, w, r, c) = unpad_region(grid, (oh, ow));
                assert_eq!((h, w), hf_unpad_float(grid, (oh, ow)), "grid {grid:?} orig {oh}x{ow}");
                assert_eq!((r * 2 + h, c * 2 + w), grid);
            }
        }
    }
}

#[test]
fn token_counts_for_extreme_and_tiny_images() {
    let cfg = LlavaNextImageProcessorConfig { image_grid_pinpoints: PINS.to_vec(), ..fixture_cfg() };
    // 1:8 wide: grid 4 x 12 unpads to 2 x 12 -> 24 + 2 newlines (one per kept row) + 16 base.
    assert_eq!(num_image_tokens((50, 400), &cfg, 14, "default"), 42);
    // 8:1 tall: grid 12 x 4 unpads to 12 x 2 -> 24 + 12 newlines + 16 base; not symmetric with the wide case.
    assert_eq!(num_image_tokens((400, 50), &cfg, 14, "default"), 52);
    // 10 x 10 on [56, 112]: grid 4 x 8 unpads to 4 x 4 -> 16 + 4 + 16.
    assert_eq!(num_image_tokens((10, 10), &cfg, 14, "default"), 36);
    // "full" keeps the CLS token of the base image.
    assert_eq!(num_image_tokens((10, 10), &cfg, 14, "full"), 37);
}

fn fixture_cfg() -> LlavaNextImageProcessorConfig {
    LlavaNextImageProcessorConfig::load(&fixture_dir("llava_next-mistral-tiny")).unwrap()
}

#[test]
fn extreme_and_tiny_images_preprocess() {
    let cfg = fixture_cfg();
    // 1 x 200 is scaled to 0 pixels wide by every pinpoint, so all keep nothing and the least waste wins:
    // [56, 112], 2 crops + base (HF does the same).
    for (w, h, crops) in [(400, 50, 4), (50, 400, 4), (10, 10, 3), (1, 1, 3), (1, 200, 3), (3000, 2000, 5)] {
        let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 77]));
        let out = preprocess(&img, &cfg).unwrap_or_else(|e| panic!("{w}x{h}: {e}"));
        assert_eq!((out.n_crops, out.size), (crops, 56), "{w}x{h}");
        assert_eq!(out.pixel_values.len(), crops * 3 * 56 * 56);
        assert!(out.pixel_values.iter().all(|v| v.is_finite()));
        assert_eq!(out.image_size_hw, (h as usize, w as usize));
    }
}

#[test]
fn canvas_padding_is_black_and_centred_with_the_odd_row_last() {
    // 130 x 70 is fitted to 112 x 61 on a 112 x 112 canvas: 51 spare rows, 25 above and 26 below.
    let cfg = LlavaNextImageProcessorConfig { do_rescale: false, do_normalize: false, ..fixture_cfg() };
    let colour = [200.0, 100.0, 50.0];
    let out = preprocess(&RgbImage::from_pixel(130, 70, Rgb([200, 100, 50])), &cfg).unwrap();
    assert_eq!(out.n_crops, 5);
    let s = out.size;
    let at = |crop: usize, c: usize, y: usize, x: usize| out.pixel_values[((crop * 3 + c) * s + y) * s + x];
    // Crop order: base, then (row 0, col 0), (0, 1), (1, 0), (1, 1).
    for crop in 1..5 {
        let first_image_row = if crop <= 2 { 25 } else { 0 };
        let image_rows_end = if crop <= 2 { 56 } else { 86 - 56 };
        for y in 0..s {
            let inside = (first_image_row..image_rows_end).contains(&y);
            for x in [0, 27, 55] {
                for (c, &expected) in colour.iter().enumerate() {
                    let v = at(crop, c, y, x);
                    if inside {
                        assert!((v - expected).abs() <= 1.0, "crop {crop} row {y}: {v} vs {expected}");
                    } else {
                        assert_eq!(v, 0.0, "crop {crop} row {y} should be padding");
                    }
                }
            }
        }
    }
    // The base image is the whole picture squashed to 56 x 56: no padding anywhere.
    assert!((0..3).all(|c| (0..s).all(|y| (at(0, c, y, 0) - colour[c]).abs() <= 1.0)));
}

#[test]
fn normalised_padding_reads_minus_mean_over_std() {
    let cfg = fixture_cfg();
    let out = preprocess(&RgbImage::from_pixel(130, 70, Rgb([255, 255, 255])), &cfg).unwrap();
    // Top-left pixel of crop 1 is canvas padding.
    let s = out.size;
    for c in 0..3 {
        let v = out.pixel_values[(3 + c) * s * s];
        let expected = -cfg.image_mean[c] / cfg.image_std[c];
        assert!((v - expected).abs() < 1e-5, "channel {c}: {v} vs {expected}");
    }
}

#[test]
fn centre_crop_and_shortest_edge_resize_when_crop_is_smaller() {
    // shortest_edge 6, crop 4: an 8 x 8 image has canvas [8, 8] cut into 4 x 4 pieces; each piece is resized
    // to 6 x 6 and centre-cropped at offset (6 - 4) / 2 = 1. With a flat image every value stays put.
    let cfg = LlavaNextImageProcessorConfig {
        shortest_edge: 6,
        crop_size: (4, 4),
        image_grid_pinpoints: vec![[8, 8]],
        do_rescale: false,
        do_normalize: false,
        ..Default::default()
    };
    let out = preprocess(&RgbImage::from_pixel(8, 8, Rgb([9, 99, 199])), &cfg).unwrap();
    assert_eq!((out.n_crops, out.size), (5, 4));
    for (i, v) in out.pixel_values.iter().enumerate() {
        let expected = [9.0, 99.0, 199.0][i / 16 % 3];
        assert!((v - expected).abs() <= 1.0, "value {v} at {i}");
    }
    // Without the resize, pieces are exact quadrants of the canvas (here the image itself).
    let cfg = LlavaNextImageProcessorConfig { do_resize: false, ..cfg };
    let img = RgbImage::from_fn(8, 8, |x, y| Rgb([x as u8, y as u8, 0]));
    let out = preprocess(&img, &cfg).unwrap();
    for (crop, (y0, x0)) in [(1, (0, 0)), (2, (0, 4)), (3, (4, 0)), (4, (4, 4))] {
        for y in 0..4 {
            for x in 0..4 {
                assert_eq!(out.pixel_values[((crop * 3) * 4 + y) * 4 + x], (x0 + x) as f32);
                assert_eq!(out.pixel_values[((crop * 3 + 1) * 4 + y) * 4 + x], (y0 + y) as f32);
            }
        }
    }
}
