//! Qwen2-VL image preprocessing against HF's own output (golden.safetensors, made by transformers 5.24 with
//! the torchvision backend), plus decoding of the formats and failures a dataset run will meet.

use std::path::{Path, PathBuf};

use culturelens::vision::image_input::{decode_rgb, load_rgb};
use culturelens::vision::qwen2_vl::{preprocess, smart_resize, Qwen2VlImageProcessorConfig};
use culturelens::vision::ImageError;
use image::{ImageBuffer, ImageEncoder, Luma, Rgb, RgbImage, Rgba};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_vl-tiny")
}

/// A fresh directory per test under cargo's scratch area for integration tests.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("qwen2_vl_preprocess").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn golden_tensor(name: &str) -> (Vec<usize>, safetensors::Dtype, Vec<u8>) {
    let path = fixture_dir().join("golden.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap_or_else(|e| panic!("golden tensor {name}: {e}"));
    (t.shape().to_vec(), t.dtype(), t.data().to_vec())
}

fn golden_f32(name: &str) -> (Vec<usize>, Vec<f32>) {
    let (shape, dtype, data) = golden_tensor(name);
    assert_eq!(dtype, safetensors::Dtype::F32, "{name}");
    (shape, data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
}

fn golden_i64(name: &str) -> (Vec<usize>, Vec<i64>) {
    let (shape, dtype, data) = golden_tensor(name);
    assert_eq!(dtype, safetensors::Dtype::I64, "{name}");
    (shape, data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect())
}

fn abs_diff_stats(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let mean = a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs())).sum::<f64>() / a.len() as f64;
    (max, mean as f32)
}

#[test]
fn matches_hf_pixel_values_on_fixture() {
    let dir = fixture_dir();
    let cfg = Qwen2VlImageProcessorConfig::load(&dir).unwrap();
    let img = load_rgb(&dir.join("image.png")).unwrap();
    assert_eq!(img.dimensions(), (150, 97));
    let out = preprocess(&img, &cfg).unwrap();

    let (grid_shape, grid) = golden_i64("image_grid_thw");
    assert_eq!(grid_shape, vec![1, 3]);
    assert_eq!(out.grid_thw.map(|v| v as i64).to_vec(), grid);
    assert_eq!(out.grid_thw, [1, 6, 10]);

    let (shape, golden) = golden_f32("pixel_values");
    assert_eq!(shape, vec![60, 1176]);
    assert_eq!((out.num_patches, out.patch_dim), (60, 1176));
    assert_eq!(out.pixel_values.len(), golden.len());

    let (max, mean) = abs_diff_stats(&out.pixel_values, &golden);
    let (pil_max, pil_mean) = abs_diff_stats(&out.pixel_values, &golden_f32("pixel_values_pil").1);
    println!("vs torchvision golden: max abs {max:e}, mean abs {mean:e}");
    println!("vs PIL-backend golden: max abs {pil_max:e}, mean abs {pil_mean:e}");
    assert!(max <= 1e-5, "max abs diff {max} (mean {mean})");
    assert!(mean <= 1e-6, "mean abs diff {mean}");

    let case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    assert_eq!(out.num_merged_tokens(cfg.merge_size) as u64, case["num_image_tokens"].as_u64().unwrap());
}

#[test]
fn config_reads_fixture_and_both_size_spellings() {
    let cfg = Qwen2VlImageProcessorConfig::load(&fixture_dir()).unwrap();
    assert_eq!((cfg.patch_size, cfg.temporal_patch_size, cfg.merge_size), (14, 2, 2));
    assert_eq!((cfg.min_pixels, cfg.max_pixels), (3136, 50176));
    assert_eq!(cfg.image_mean, [0.48145466, 0.4578275, 0.40821073]);
    assert_eq!(cfg.rescale_factor, 0.00392156862745098);

    let dir = scratch("config_size_only");
    std::fs::write(dir.join("preprocessor_config.json"), r#"{"size": {"shortest_edge": 100, "longest_edge": 200}}"#)
        .unwrap();
    let cfg = Qwen2VlImageProcessorConfig::load(&dir).unwrap();
    assert_eq!((cfg.min_pixels, cfg.max_pixels), (100, 200));
    assert_eq!(cfg.image_std, Qwen2VlImageProcessorConfig::default().image_std);

    // As in HF's __init__, explicit min/max_pixels win over `size`.
    std::fs::write(
        dir.join("preprocessor_config.json"),
        r#"{"size": {"shortest_edge": 100, "longest_edge": 200}, "min_pixels": 7, "max_pixels": 9}"#,
    )
    .unwrap();
    let cfg = Qwen2VlImageProcessorConfig::load(&dir).unwrap();
    assert_eq!((cfg.min_pixels, cfg.max_pixels), (7, 9));

    std::fs::write(dir.join("preprocessor_config.json"), r#"{"size": {"height": 224, "width": 224}}"#).unwrap();
    let err = Qwen2VlImageProcessorConfig::load(&dir).unwrap_err().to_string();
    assert!(err.contains("preprocessor_config.json") && err.contains("shortest_edge"), "{err}");

    let dir = scratch("config_processor_json");
    std::fs::write(dir.join("processor_config.json"), r#"{"image_processor": {"min_pixels": 1, "max_pixels": 2}}"#)
        .unwrap();
    let cfg = Qwen2VlImageProcessorConfig::load(&dir).unwrap();
    assert_eq!((cfg.min_pixels, cfg.max_pixels), (1, 2));

    let err = Qwen2VlImageProcessorConfig::load(&scratch("config_missing")).unwrap_err().to_string();
    assert!(err.contains("processor_config.json"), "{err}");
}

#[test]
fn smart_resize_follows_hf_formula() {
    let hf_default = |h, w| smart_resize(h, w, 28, 56 * 56, 28 * 28 * 1280).unwrap();
    // The fixture: rounding alone lands inside the budget.
    assert_eq!(smart_resize(97, 150, 28, 3136, 50176).unwrap(), (84, 140));
    assert_eq!(smart_resize(150, 97, 28, 3136, 50176).unwrap(), (140, 84));
    // Far beyond max_pixels: scaled down by sqrt(area / max), floored to the factor.
    assert_eq!(hf_default(3000, 4000), (840, 1148));
    assert_eq!(hf_default(4000, 3000), (1148, 840));
    assert_eq!(hf_default(1080, 1920), (728, 1316));
    assert_eq!(smart_resize(1080, 1920, 28, 3136, 50176).unwrap(), (168, 280));
    assert_eq!(hf_default(100_000, 1000), (9996, 84));
    // Floors to zero on the short side are lifted to one factor.
    assert_eq!(smart_resize(28, 5000, 28, 3136, 50176).unwrap(), (28, 2968));
    // Below min_pixels: scaled up by sqrt(min / area), ceiled to the factor.
    assert_eq!(hf_default(20, 30), (56, 84));
    assert_eq!(hf_default(1, 1), (56, 56));
    assert_eq!(hf_default(64, 64), (56, 56));
    // Python rounds halves to even: 42/28 = 1.5 -> 2, 70/28 = 2.5 -> 2.
    assert_eq!(hf_default(42, 70), (56, 56));
    // A ratio of exactly 200 is allowed, above it is HF's ValueError.
    assert_eq!(hf_default(10, 2000), (28, 812));
    assert_eq!(hf_default(2000, 10), (812, 28));
    let err = smart_resize(10, 2010, 28, 3136, 50176).unwrap_err().to_string();
    assert!(err.contains("aspect ratio must be smaller than 200"), "{err}");
    assert!(smart_resize(0, 10, 28, 3136, 50176).is_err());
}

#[test]
fn patch_layout_is_merge_window_major() {
    // Encode each pixel's position in its value, skip rescale/normalise, and check where values land.
    let cfg =
        Qwen2VlImageProcessorConfig { do_resize: false, do_rescale: false, do_normalize: false, ..Default::default() };
    let (w, h) = (56u32, 84u32); // grid 6 x 4 patches of 14
    let img =
        RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, ((x / 14 + 10 * (y / 14)) % 256) as u8]));
    let out = preprocess(&img, &cfg).unwrap();
    assert_eq!(out.grid_thw, [1, 6, 4]);
    let (p, t) = (14, 2);
    for row in 0..out.num_patches {
        // Row = ((block_h * (gw/2) + block_w) * 2 + merge_h) * 2 + merge_w
        let (merge_w, merge_h, block) = (row % 2, (row / 2) % 2, row / 4);
        let (block_h, block_w) = (block / 2, block % 2);
        let (py, px) = (block_h * 2 + merge_h, block_w * 2 + merge_w);
        let patch = &out.pixel_values[row * out.patch_dim..][..out.patch_dim];
        for frame in 0..t {
            for yy in 0..p {
                for xx in 0..p {
                    let at = |c: usize| patch[((c * t + frame) * p + yy) * p + xx];
                    assert_eq!(at(0), (px * p + xx) as f32);
                    assert_eq!(at(1), (py * p + yy) as f32);
                    assert_eq!(at(2), (px + 10 * py) as f32);
                }
            }
        }
    }
}

#[test]
fn upscales_tiny_images() {
    // 20x30 is below min_pixels: smart_resize asks for 56x84, the upsampling branch of the resize.
    let flat = RgbImage::from_pixel(30, 20, Rgb([10, 128, 250]));
    let out = preprocess(&flat, &Qwen2VlImageProcessorConfig::default()).unwrap();
    assert_eq!(out.grid_thw, [1, 4, 6]);
    let cfg = Qwen2VlImageProcessorConfig { do_rescale: false, do_normalize: false, ..Default::default() };
    let raw = preprocess(&flat, &cfg).unwrap();
    // Fixed-point weights may miss 1.0 by a hair, so a flat image may move by one grey level, never more.
    for (i, v) in raw.pixel_values.iter().enumerate() {
        let expected = [10.0, 128.0, 250.0][i % raw.patch_dim / (2 * 14 * 14)];
        assert!((v - expected).abs() <= 1.0, "value {v} at {i}, expected {expected}");
    }
}

fn check_preprocess(img: &RgbImage, expected_grid: [usize; 3]) {
    let out = preprocess(img, &Qwen2VlImageProcessorConfig::default()).unwrap();
    assert_eq!(out.grid_thw, expected_grid);
    assert_eq!(out.pixel_values.len(), out.num_patches * out.patch_dim);
    assert!(out.pixel_values.iter().all(|v| v.is_finite()));
}

#[test]
fn decodes_grayscale_png_by_replicating() {
    let dir = scratch("gray");
    let path = dir.join("gray.png");
    ImageBuffer::from_fn(64, 64, |x, y| Luma([(x * 4 + y) as u8])).save(&path).unwrap();
    let img = load_rgb(&path).unwrap();
    assert_eq!(img.get_pixel(5, 7).0, [27, 27, 27]);
    check_preprocess(&img, [1, 4, 4]);
}

#[test]
fn decodes_rgba_png_by_dropping_alpha() {
    // Pillow's convert("RGB") drops alpha; it does not composite on white.
    let dir = scratch("rgba");
    let path = dir.join("rgba.png");
    ImageBuffer::from_fn(150, 97, |x, y| Rgba([x as u8, y as u8, 200, if x < 75 { 0 } else { 128 }]))
        .save(&path)
        .unwrap();
    let img = load_rgb(&path).unwrap();
    assert_eq!(img.get_pixel(3, 4).0, [3, 4, 200]);
    assert_eq!(img.get_pixel(100, 4).0, [100, 4, 200]);
    check_preprocess(&img, [1, 6, 10]);
}

#[test]
fn decodes_16_bit_png_like_pillow() {
    let dir = scratch("png16");
    // Colour: Pillow keeps the high byte.
    let path = dir.join("rgb16.png");
    ImageBuffer::from_fn(97, 150, |x, _| Rgb([0x12ffu16, 0x8000, if x == 0 { 0xffff } else { 0x00ff }]))
        .save(&path)
        .unwrap();
    let img = load_rgb(&path).unwrap();
    assert_eq!(img.get_pixel(0, 0).0, [0x12, 0x80, 0xff]);
    assert_eq!(img.get_pixel(1, 0).0, [0x12, 0x80, 0x00]);
    check_preprocess(&img, [1, 10, 6]);
    // Greyscale opens as I;16, and I;16 -> RGB clips at 255.
    let path = dir.join("gray16.png");
    ImageBuffer::from_fn(64, 64, |x, _| Luma([if x < 32 { 200u16 } else { 300 }])).save(&path).unwrap();
    let img = load_rgb(&path).unwrap();
    assert_eq!(img.get_pixel(0, 0).0, [200, 200, 200]);
    assert_eq!(img.get_pixel(40, 0).0, [255, 255, 255]);
    check_preprocess(&img, [1, 4, 4]);
}

fn smooth_rgb(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128]))
}

#[test]
fn decodes_jpeg() {
    let dir = scratch("jpeg");
    let path = dir.join("photo.jpg");
    let src = smooth_rgb(300, 200);
    src.save(&path).unwrap();
    let img = load_rgb(&path).unwrap();
    assert_eq!(img.dimensions(), (300, 200));
    let err = img.pixels().zip(src.pixels()).map(|(a, b)| a.0[0].abs_diff(b.0[0])).max().unwrap();
    assert!(err <= 8, "JPEG round trip off by {err}");
    check_preprocess(&img, [1, 14, 22]);
}

#[test]
fn decodes_webp_from_memory() {
    let src = smooth_rgb(200, 300);
    let mut bytes = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut bytes)
        .write_image(src.as_raw(), 200, 300, image::ExtendedColorType::Rgb8)
        .unwrap();
    let img = decode_rgb(&bytes, "cvqa.parquet row 3").unwrap();
    assert_eq!(img, src);
    check_preprocess(&img, [1, 22, 14]);
}

/// A PNG carrying an EXIF orientation of 6 (rotate 90 degrees clockwise), as phone photos do.
fn png_with_orientation_6(w: u32, h: u32) -> Vec<u8> {
    let exif: Vec<u8> = [
        &b"MM\x00\x2a\x00\x00\x00\x08"[..], // big-endian TIFF header, IFD at offset 8
        &[0x00, 0x01],                      // one entry
        &[0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00], // Orientation = 6
        &[0x00, 0x00, 0x00, 0x00],          // no next IFD
    ]
    .concat();
    let src = RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, 0]));
    let mut bytes = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut bytes);
    encoder.set_exif_metadata(exif).unwrap();
    encoder.write_image(src.as_raw(), w, h, image::ExtendedColorType::Rgb8).unwrap();
    bytes
}

#[test]
fn applies_exif_orientation_like_exif_transpose() {
    let img = decode_rgb(&png_with_orientation_6(40, 30), "rotated.png").unwrap();
    assert_eq!(img.dimensions(), (30, 40));
    // Rotating 90 degrees clockwise puts the source's bottom-left pixel (0, 29) at the top-left.
    assert_eq!(img.get_pixel(0, 0).0, [0, 29, 0]);
}

fn assert_names(err: ImageError, what: &str) {
    let msg = err.to_string();
    assert!(msg.contains(what), "error {msg:?} does not name {what:?}");
}

#[test]
fn errors_name_the_file() {
    let dir = scratch("errors");

    let missing = dir.join("no_such_image.png");
    assert_names(load_rgb(&missing).unwrap_err(), &missing.display().to_string());

    let empty = dir.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let err = load_rgb(&empty).unwrap_err();
    assert!(matches!(err, ImageError::Empty { .. }), "{err}");
    assert_names(err, &empty.display().to_string());

    let mut png = Vec::new();
    smooth_rgb(64, 64).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let truncated = dir.join("truncated.png");
    std::fs::write(&truncated, &png[..png.len() / 2]).unwrap();
    assert_names(load_rgb(&truncated).unwrap_err(), &truncated.display().to_string());

    let garbage = dir.join("garbage.jpg");
    std::fs::write(&garbage, b"this is not an image, just some text bytes").unwrap();
    let err = load_rgb(&garbage).unwrap_err();
    assert!(matches!(err, ImageError::UnknownFormat { .. }), "{err}");
    assert_names(err, &garbage.display().to_string());

    // A valid signature followed by junk must fail in the decoder, not panic.
    let junk_png = [&png[..16], &[0xAB; 64][..]].concat();
    assert_names(decode_rgb(&junk_png, "row 9").unwrap_err(), "row 9");
    assert_names(decode_rgb(&[], "row 10").unwrap_err(), "row 10");
}
