//! `culturelens run --image` on the Qwen2.5-VL fixture: HF's ids and logits from the engine's own
//! preprocessing, and image inputs that are wrong or unusual.
mod common;

use std::path::Path;
use std::process::Command;

use common::Golden;

const CASE: &str = "qwen2_5_vl-tiny";

fn question(dir: &Path) -> String {
    let case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    let parts = case["conversation"][0]["content"].as_array().unwrap();
    parts.iter().find(|p| p["type"] == "text").unwrap()["text"].as_str().unwrap().to_string()
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_culturelens"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dump_ids(st: &safetensors::SafeTensors<'_>) -> Vec<i64> {
    st.tensor("input_ids").unwrap().data().chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn fails_naming(args: &[&str], needles: &[&str]) {
    let (code, _, err) = run(args);
    assert_eq!(code, Some(1), "expected a clean failure, got {code:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "error should mention {n:?}: {err}");
    }
}

/// Runs `case`'s own question and image.png through `run --dump` and checks what HF's golden file
/// says: input ids exact, logits from our own preprocessing within NMSE 1e-4, the same answer.
fn fixture_image_prompt_matches_hf(case: &str) {
    let g = Golden::open(case);
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("d.safetensors");
    let image = g.dir.join("image.png");
    let (code, _, err) = run(&[
        "run",
        "--model",
        g.dir.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--prompt",
        &question(&g.dir),
        "--max-new-tokens",
        "2",
        "--dump",
        dump.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{case}: {err}");
    let bytes = std::fs::read(&dump).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ids = dump_ids(&st);
    assert_eq!(ids, g.i64("input_ids"), "{case}: input ids with the image placeholder expanded");
    let logits: Vec<f32> =
        st.tensor("logits").unwrap().data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let want = g.f32("logits");
    let e = common::nmse(&logits, &want);
    eprintln!("{case}: logits from our own preprocessing: NMSE {e:.2e}");
    assert!(e <= 1e-4, "{case}: NMSE {e:e}");
    let v = logits.len() / ids.len();
    let opts = g.ids("mc.option_token_ids");
    let pick = |row: &[f32]| {
        opts.iter().enumerate().max_by(|a, b| row[*a.1 as usize].total_cmp(&row[*b.1 as usize])).unwrap().0
    };
    let last = (ids.len() - 1) * v;
    assert_eq!(pick(&logits[last..]), pick(&want[last..]), "{case}: same multiple-choice answer");
}

#[test]
fn image_prompt_matches_hf_ids_and_logits() {
    fixture_image_prompt_matches_hf(CASE);
}

#[test]
fn bad_images_fail_with_the_file_named() {
    for case in [CASE, "llava_next-mistral-tiny"] {
        bad_images_on(case);
    }
}

fn bad_images_on(case: &str) {
    let g = Golden::open(case);
    let dir = g.dir.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such.png");
    let empty = tmp.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let truncated = tmp.path().join("truncated.png");
    let png = std::fs::read(g.dir.join("image.png")).unwrap();
    std::fs::write(&truncated, &png[..png.len() / 2]).unwrap();
    let garbage = tmp.path().join("garbage.jpg");
    std::fs::write(&garbage, b"this is not an image at all").unwrap();
    for p in [&missing, &empty, &truncated, &garbage] {
        let ps = p.to_str().unwrap();
        fails_naming(&["run", "--model", dir, "--image", ps, "--prompt", "What is this?"], &[ps]);
    }
}

#[test]
fn image_and_model_must_agree() {
    let g = Golden::open(CASE);
    let image = g.dir.join("image.png");
    let text_model = common::fixture_dir("qwen2-tiny");
    fails_naming(
        &["run", "--model", text_model.to_str().unwrap(), "--image", image.to_str().unwrap(), "--prompt", "hi"],
        &["text-only model", "image.png"],
    );
    // A raw prompt with an image placeholder but no image.
    fails_naming(
        &[
            "run",
            "--model",
            g.dir.to_str().unwrap(),
            "--raw",
            "--prompt",
            "look <|vision_start|><|image_pad|><|vision_end|> here",
        ],
        &["image", "no --image"],
    );
    // A raw prompt without a placeholder but with an image.
    fails_naming(
        &[
            "run",
            "--model",
            g.dir.to_str().unwrap(),
            "--raw",
            "--image",
            image.to_str().unwrap(),
            "--prompt",
            "no placeholder",
        ],
        &["0 image placeholder"],
    );
    // A vision model answers text-only prompts too.
    let (code, _, err) =
        run(&["run", "--model", g.dir.to_str().unwrap(), "--prompt", "hello", "--max-new-tokens", "2"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn images_far_beyond_max_pixels_are_resized_not_rejected() {
    let g = Golden::open(CASE);
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.png");
    let img = image::RgbImage::from_fn(2400, 1600, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    img.save(&big).unwrap();
    let dump = tmp.path().join("d.safetensors");
    let (code, _, err) = run(&[
        "run",
        "--model",
        g.dir.to_str().unwrap(),
        "--image",
        big.to_str().unwrap(),
        "--prompt",
        "What is this?",
        "--max-new-tokens",
        "1",
        "--dump",
        dump.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let bytes = std::fs::read(&dump).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ids: Vec<i64> =
        st.tensor("input_ids").unwrap().data().chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
    // max_pixels 50176 = 224²: 2400x1600 → smart_resize gives 280x168 (47040 px) → 20x12 patches → 60 tokens.
    let (h, w) = culturelens::vision::qwen2_vl::smart_resize(1600, 2400, 28, 3136, 50176).unwrap();
    assert!(h * w <= 50176);
    let image_tokens = ids.iter().filter(|&&i| i == 712).count();
    assert_eq!(image_tokens, (h / 14) * (w / 14) / 4);
}

#[test]
fn llava_next_image_prompts_match_hf_and_take_any_aspect_ratio() {
    for case in ["llava_next-mistral-tiny", "llava_next-qwen2-tiny"] {
        fixture_image_prompt_matches_hf(case);
        let g = Golden::open(case);
        let dir = g.dir.to_str().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        // 1:8 and 8:1 strips and an image far smaller than one crop must all run.
        for (w, h) in [(400u32, 50u32), (50, 400), (9, 7)] {
            let p = tmp.path().join(format!("{w}x{h}.png"));
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 11 % 256) as u8, 90]))
                .save(&p)
                .unwrap();
            let (code, _, err) = run(&[
                "run",
                "--model",
                dir,
                "--image",
                p.to_str().unwrap(),
                "--prompt",
                "What is this?",
                "--max-new-tokens",
                "1",
            ]);
            assert_eq!(code, Some(0), "{case} {w}x{h}: {err}");
        }
    }
}
