//! The cases a 150-input bad-input sweep found unguarded, each through the binary: an error that
//! names the row, file or tensor, exit 1, no panic, no abort, and nothing written before the check.
mod common;

use std::path::{Path, PathBuf};

use common::{fails, ok, root, s};

/// A JSONL data set of `rows` (id, question, options), each with the fixture's image.
fn jsonl(dir: &Path, rows: &[(&str, String, usize)]) -> PathBuf {
    std::fs::copy(root().join("tests/fixtures/qwen2_5_vl-tiny/image.png"), dir.join("img.png")).unwrap();
    let lines: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(k, (id, q, n))| {
            let options: Vec<String> = (0..*n).map(|i| format!("option {i}")).collect();
            serde_json::json!({"id": id, "language": "L", "country": format!("C{}", k % 2), "question": q,
                "options": options, "label": 0, "image": "img.png"})
            .to_string()
        })
        .collect();
    let p = dir.join("rows.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

#[test]
fn rows_with_too_many_options_or_too_long_for_the_context_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for n in [9, 20] {
        let data = jsonl(dir.path(), &[("ok", "q?".into(), 4), ("wide", "q?".into(), n)]);
        fails(&["collect", "--data", s(&data), "--out", s(&out)], &["wide", &format!("{n} options"), "A to H"]);
    }
    // 200k characters: refused before any forward, naming the context.
    let data = jsonl(dir.path(), &[("ok", "q?".into(), 4), ("long", "word ".repeat(40_000), 4)]);
    fails(
        &["collect", "--data", s(&data), "--out", s(&out)],
        &["row long", "longer than the model's context of 32768", "max_position_embeddings"],
    );
    // 80 kB of argument (under Linux's 128 kB per argument), about 40k tokens.
    let prompt = "w ".repeat(40_000);
    fails(&["run", "--prompt", &prompt], &["past the model's context", "max_position_embeddings"]);
    assert!(!out.exists());
}

/// A PNG whose header claims 100000 x 100000 pixels (and holds almost nothing).
fn png_bomb() -> Vec<u8> {
    fn crc(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut v = (data.len() as u32).to_be_bytes().to_vec();
        let body = [kind, data].concat();
        v.extend(&body);
        v.extend(crc(&body).to_be_bytes());
        v
    };
    let mut ihdr = 100_000u32.to_be_bytes().to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    // A stored (uncompressed) zlib block of 5 zero bytes.
    let idat = [0x78, 0x01, 0x01, 0x05, 0x00, 0xFA, 0xFF, 0, 0, 0, 0, 0, 0x00, 0x05, 0x00, 0x01];
    [&b"\x89PNG\r\n\x1a\n"[..], &chunk(b"IHDR", &ihdr), &chunk(b"IDAT", &idat), &chunk(b"IEND", &[])].concat()
}

#[test]
fn decompression_bombs_and_truncated_jpegs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.png");
    std::fs::write(&bomb, png_bomb()).unwrap();
    let vl = root().join("tests/fixtures/qwen2_5_vl-tiny");
    fails(&["run", "--model", s(&vl), "--image", s(&bomb), "--prompt", "hi"], &["bomb.png", "limit"]);
    // The same bytes as a data set's image.
    std::fs::copy(vl.join("image.png"), dir.path().join("img.png")).unwrap();
    let row = |id: &str, image: &str| {
        serde_json::json!({"id": id, "language": "L", "country": id, "question": "q?",
            "options": ["a", "b", "c", "d"], "label": 0, "image": image})
        .to_string()
    };
    let data = dir.path().join("rows.jsonl");
    std::fs::write(&data, [row("ok", "img.png"), row("bomb", "bomb.png")].join("\n")).unwrap();
    let o = dir.path().join("o");
    fails(&["collect", "--data", s(&data), "--out", s(&o)], &["row bomb", "limit"]);
    assert!(!o.exists(), "collect wrote output before refusing the row");

    // A JPEG cut in the middle of its scan.
    let img = image::RgbImage::from_fn(96, 64, |x, y| image::Rgb([x as u8 * 2, y as u8 * 3, 90]));
    let mut jpeg = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() * 2 / 3]).unwrap();
    fails(&["run", "--model", s(&vl), "--image", s(&cut), "--prompt", "hi"], &["cut.jpg", "truncated"]);
    let whole = dir.path().join("whole.jpg");
    std::fs::write(&whole, &jpeg).unwrap();
    ok(&["run", "--model", s(&vl), "--image", s(&whole), "--prompt", "hi", "--max-new-tokens", "1"]);
}

#[test]
fn non_finite_weights_scales_and_statistics_are_named() {
    let dir = tempfile::tempdir().unwrap();
    // A NaN in one weight of a copy of the tiny Qwen2.
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let src = common::fixture_dir("qwen2-tiny");
    for f in
        ["config.json", "generation_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    {
        std::fs::copy(src.join(f), model.join(f)).unwrap();
    }
    let mut bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let (header, data) = common::safetensors_header(&bytes);
    let at = data + header["model.layers.1.mlp.up_proj.weight"]["data_offsets"][0].as_u64().unwrap() as usize + 2 * 7;
    bytes[at..at + 2].copy_from_slice(&half::bf16::NAN.to_le_bytes());
    std::fs::write(model.join("model.safetensors"), bytes).unwrap();
    fails(&["run", "--model", s(&model), "--prompt", "hi"], &["model.layers.1.mlp.up_proj.weight", "NaN", "element 7"]);

    // Statistics and neuron sets of the bundled demo, then ablate --scale NaN / inf.
    let stats = dir.path().join("stats");
    ok(&["collect", "--limit", "2", "--out", s(&stats)]);
    let neurons = dir.path().join("neurons");
    ok(&["identify", "--stats", s(&stats), "--method", "cas", "--k", "3", "--out", s(&neurons)]);
    let a_out = dir.path().join("a");
    for bad in ["NaN", "inf", "-inf"] {
        let scale = format!("--scale={bad}");
        let a = ["ablate", "--limit", "2", "--neurons", s(&neurons), &scale, "--out", s(&a_out)];
        fails(&a, &[&format!("--scale {bad}"), "finite"]);
        assert!(!a_out.exists());
    }

    // A statistics file whose sum holds NaN, or whose counts are negative.
    let file = stats.join("stats.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    let (header, data) = common::safetensors_header(&bytes);
    let offset = |t: &str| data + header[t]["data_offsets"][0].as_u64().unwrap() as usize;
    let mut nan_sum = bytes.clone();
    nan_sum[offset("sum") + 8 * 5..offset("sum") + 8 * 6].copy_from_slice(&f64::NAN.to_le_bytes());
    let mut negative = bytes.clone();
    negative[offset("count_pos") + 8 * 2..offset("count_pos") + 8 * 3].copy_from_slice(&(-4i64).to_le_bytes());
    for (name, b, needles) in [
        ("nan.safetensors", nan_sum, ["tensor sum", "non-finite", "element 5"]),
        ("neg.safetensors", negative, ["tensor count_pos", "negative", "-4"]),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        let mut all = vec![name];
        all.extend(needles);
        let n2 = dir.path().join("n2");
        fails(&["identify", "--stats", s(&p), "--out", s(&n2)], &all);
        assert!(!n2.exists(), "identify wrote output before refusing {name}");
    }
}

#[test]
fn ablate_checks_every_neuron_file_before_work_and_runs_the_ones_present() {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats");
    ok(&["collect", "--limit", "2", "--out", s(&stats)]);
    let neurons = dir.path().join("neurons");
    ok(&["identify", "--stats", s(&stats), "--method", "cas,mad", "--k", "3", "--out", s(&neurons)]);
    // Asked for a method identify did not write: refused at once, naming the file.
    let out = dir.path().join("out");
    let a = ["ablate", "--limit", "2", "--neurons", s(&neurons), "--method", "cas,lape", "--out", s(&out)];
    fails(&a, &["neurons_lape.json", "not found"]);
    assert!(!out.exists());
    // A broken file among good ones: refused before the model loads.
    std::fs::write(neurons.join("neurons_lap.json"), "{ not json").unwrap();
    fails(&["ablate", "--limit", "2", "--neurons", s(&neurons), "--out", s(&out)], &["neurons_lap.json"]);
    assert!(!out.exists());
    std::fs::remove_file(neurons.join("neurons_lap.json")).unwrap();
    // By default, every method present.
    ok(&["ablate", "--limit", "2", "--neurons", s(&neurons), "--out", s(&out)]);
    let abl = common::json(&out.join("ablation.json"));
    let methods: Vec<&String> = abl["summary"]["methods"].as_object().unwrap().keys().collect();
    assert_eq!(methods, ["cas", "mad"]);
}

/// A JPEG with data after its end-of-image marker (as motion photos append a video), scan-marker
/// bytes included, is complete; the same file cut inside its scan is not.
#[test]
fn jpeg_completeness_walks_the_segments() {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 3, y as u8 * 5, 40]));
    let mut jpeg = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
    let mut trailer = jpeg.clone();
    trailer.extend([0x00, 0xFF, 0xDA, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 0xFF, 0x12]);
    assert!(culturelens::vision::image_input::decode_rgb(&trailer, "with trailer").is_ok());
    let cut = &jpeg[..jpeg.len() - 40];
    let e = culturelens::vision::image_input::decode_rgb(cut, "cut").unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}
