//! A 7B-shaped check that runs on lavapipe: a random-weight checkpoint with Qwen2.5-VL-7B's widths
//! (hidden 3584, intermediate 18944, 28 heads / 4 KV heads, vocab 152064, the 7B vision tower's
//! widths) but 2 LM layers and 2 vision blocks, through `collect` on three photo-sized images at
//! the 7B processor's default budget. It checks the image-token counts against the processor's
//! resize rule and that every statistic is finite, and reports tokens per prompt, peak host RSS,
//! peak device memory and wall time. It takes tens of minutes on a CPU adapter, so it is an
//! example rather than a test; it exits non-zero when a check fails:
//!
//! ```text
//! cargo run --release --example scale_7b
//! ```
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context};
use culturelens::eval::dataset::Lang;
use culturelens::eval::grouping::GroupBy;
use culturelens::eval::mc::PositionRule;
use culturelens::gpu::{AdapterSelector, Gpu, PrecisionRequest};
use culturelens::neurons::stats_file::StatsFile;
use culturelens::pipeline::collect::{collect, CollectOptions};
use culturelens::pipeline::data::DataOptions;
use culturelens::vision::qwen2_vl::smart_resize;

const HIDDEN: usize = 3584;
const INTERMEDIATE: usize = 18944;
const HEADS: usize = 28;
const KV_HEADS: usize = 4;
const HEAD_DIM: usize = 128;
const VOCAB: usize = 152064;
const V_HIDDEN: usize = 1280;
const V_INTERMEDIATE: usize = 3420;
const V_HEADS: usize = 16;
const LAYERS: usize = 2;
const BLOCKS: usize = 2;

/// Every tensor of the checkpoint: name, shape, and whether it is a norm weight (ones) or a bias
/// (zeros) rather than a random matrix.
fn tensors() -> Vec<(String, Vec<usize>, Fill)> {
    let mut t = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, fill: Fill| t.push((name, shape, fill));
    let (q, kv) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
    add("model.embed_tokens.weight".into(), vec![VOCAB, HIDDEN], Fill::Random);
    add("lm_head.weight".into(), vec![VOCAB, HIDDEN], Fill::Random);
    add("model.norm.weight".into(), vec![HIDDEN], Fill::Ones);
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        for (n, shape) in [
            ("self_attn.q_proj", vec![q, HIDDEN]),
            ("self_attn.k_proj", vec![kv, HIDDEN]),
            ("self_attn.v_proj", vec![kv, HIDDEN]),
        ] {
            add(format!("{p}.{n}.bias"), vec![shape[0]], Fill::Zeros);
            add(format!("{p}.{n}.weight"), shape, Fill::Random);
        }
        add(format!("{p}.self_attn.o_proj.weight"), vec![HIDDEN, q], Fill::Random);
        add(format!("{p}.mlp.gate_proj.weight"), vec![INTERMEDIATE, HIDDEN], Fill::Random);
        add(format!("{p}.mlp.up_proj.weight"), vec![INTERMEDIATE, HIDDEN], Fill::Random);
        add(format!("{p}.mlp.down_proj.weight"), vec![HIDDEN, INTERMEDIATE], Fill::Random);
        add(format!("{p}.input_layernorm.weight"), vec![HIDDEN], Fill::Ones);
        add(format!("{p}.post_attention_layernorm.weight"), vec![HIDDEN], Fill::Ones);
    }
    add("visual.patch_embed.proj.weight".into(), vec![V_HIDDEN, 3, 2, 14, 14], Fill::Random);
    for b in 0..BLOCKS {
        let p = format!("visual.blocks.{b}");
        for (n, out, inp) in [
            ("attn.qkv", 3 * V_HIDDEN, V_HIDDEN),
            ("attn.proj", V_HIDDEN, V_HIDDEN),
            ("mlp.gate_proj", V_INTERMEDIATE, V_HIDDEN),
            ("mlp.up_proj", V_INTERMEDIATE, V_HIDDEN),
            ("mlp.down_proj", V_HIDDEN, V_INTERMEDIATE),
        ] {
            add(format!("{p}.{n}.weight"), vec![out, inp], Fill::Random);
            add(format!("{p}.{n}.bias"), vec![out], Fill::Zeros);
        }
        add(format!("{p}.norm1.weight"), vec![V_HIDDEN], Fill::Ones);
        add(format!("{p}.norm2.weight"), vec![V_HIDDEN], Fill::Ones);
    }
    add("visual.merger.ln_q.weight".into(), vec![V_HIDDEN], Fill::Ones);
    add("visual.merger.mlp.0.weight".into(), vec![4 * V_HIDDEN, 4 * V_HIDDEN], Fill::Random);
    add("visual.merger.mlp.0.bias".into(), vec![4 * V_HIDDEN], Fill::Zeros);
    add("visual.merger.mlp.2.weight".into(), vec![HIDDEN, 4 * V_HIDDEN], Fill::Random);
    add("visual.merger.mlp.2.bias".into(), vec![HIDDEN], Fill::Zeros);
    t
}

#[derive(Clone, Copy)]
enum Fill {
    Random,
    Ones,
    Zeros,
}

/// Writes model.safetensors in bf16, streaming (the file is about 3.3 GB).
fn write_weights(path: &Path) -> u64 {
    let list = tensors();
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape, _) in &list {
        let bytes = shape.iter().product::<usize>() * 2;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    // One block of small random bf16 values, repeated: the run's cost does not depend on them.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let block: Vec<u8> = (0..1 << 22)
        .flat_map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            half::bf16::from_f32(((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04).to_le_bytes()
        })
        .collect();
    let mut w = BufWriter::with_capacity(1 << 24, fs::File::create(path).unwrap());
    w.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    w.write_all(&h).unwrap();
    for (_, shape, fill) in &list {
        let mut left = shape.iter().product::<usize>() * 2;
        let constant = match fill {
            Fill::Ones => Some(half::bf16::from_f32(1.0).to_le_bytes()),
            Fill::Zeros => Some([0, 0]),
            Fill::Random => None,
        };
        while left > 0 {
            let n = left.min(block.len());
            match constant {
                Some(c) => w.write_all(&c.repeat(n / 2)).unwrap(),
                None => w.write_all(&block[..n]).unwrap(),
            }
            left -= n;
        }
    }
    w.flush().unwrap();
    (8 + h.len() + offset) as u64
}

/// The tiny fixture's tokenizer, template and processor with the 7B config and budget.
fn write_model(dir: &Path) -> u64 {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_vl-tiny");
    fs::create_dir_all(dir).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.json"] {
        fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut c: serde_json::Value = serde_json::from_str(&fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    for (k, v) in [
        ("hidden_size", HIDDEN),
        ("intermediate_size", INTERMEDIATE),
        ("num_hidden_layers", LAYERS),
        ("num_attention_heads", HEADS),
        ("num_key_value_heads", KV_HEADS),
        ("vocab_size", VOCAB),
        ("max_window_layers", LAYERS),
    ] {
        c[k] = v.into();
    }
    c["rope_scaling"]["mrope_section"] = serde_json::json!([16, 24, 24]);
    let v = &mut c["vision_config"];
    for (k, n) in [
        ("depth", BLOCKS),
        ("hidden_size", V_HIDDEN),
        ("intermediate_size", V_INTERMEDIATE),
        ("num_heads", V_HEADS),
        ("out_hidden_size", HIDDEN),
    ] {
        v[k] = n.into();
    }
    v["fullatt_block_indexes"] = serde_json::json!([7, 15, 23, 31]);
    fs::write(dir.join("config.json"), serde_json::to_string_pretty(&c).unwrap()).unwrap();
    let mut p: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(src.join("preprocessor_config.json")).unwrap()).unwrap();
    // Qwen2.5-VL-7B-Instruct's budget.
    p["min_pixels"] = 3136.into();
    p["max_pixels"] = 12845056.into();
    p["size"] = serde_json::json!({"shortest_edge": 3136, "longest_edge": 12845056});
    fs::write(dir.join("preprocessor_config.json"), serde_json::to_string_pretty(&p).unwrap()).unwrap();
    write_weights(&dir.join("model.safetensors"))
}

/// A photo-like JPEG: gradients and texture, so it decodes like a real one.
fn photo(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n = (x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)) % 37;
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, ((x + y) % 200) as u8 + n as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).unwrap();
    out
}

/// This process's peak resident set, from /proc (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let model = tmp.path().join("model");
    let t0 = Instant::now();
    let bytes = write_model(&model);
    eprintln!("wrote a {:.2} GB checkpoint in {:.0} s", bytes as f64 / 1e9, t0.elapsed().as_secs_f64());
    // One image per culture, so the statistics' token counts are per prompt.
    let sizes = [(1280u32, 960u32), (2000, 1500), (800, 3000)];
    let mut rows = String::new();
    for (k, &(w, h)) in sizes.iter().enumerate() {
        fs::write(tmp.path().join(format!("{k}.jpg")), photo(w, h))?;
        rows += &serde_json::json!({"id": format!("photo{k}"), "language": format!("L{k}"), "country": format!("C{k}"),
            "question": "Which country is this from?", "options": ["A land", "B land", "C land", "D land"],
            "label": k % 4, "image": format!("{k}.jpg")})
        .to_string();
        rows.push('\n');
    }
    let data = tmp.path().join("photos.jsonl");
    fs::write(&data, rows)?;

    let gpu = Gpu::open(&AdapterSelector::default(), PrecisionRequest::default())?;
    let o = CollectOptions {
        model: model.to_string_lossy().into_owned(),
        data: DataOptions {
            data: data.to_string_lossy().into_owned(),
            split: None,
            group_by: GroupBy::Country,
            lang: Lang::En,
            min_per_group: 1,
            groups: None,
            limit: None,
            inputs: Default::default(),
            rows: None,
        },
        rule: PositionRule::All,
        out: tmp.path().join("stats"),
        chunk_examples: 1,
        min_checkpoint_seconds: 0.0,
        max_batch_tokens: 4096,
        shard: (0, 1),
        weighting: Default::default(),
        progress: true,
    };
    let started = Instant::now();
    let path = collect(&gpu, &o).context("collect")?;
    let wall = started.elapsed().as_secs_f64();
    let stats = StatsFile::load(&path)?;
    let counts = stats.acc.token_counts.clone().context("the statistics carry no token counts")?;
    println!("| image | image tokens | prompt tokens |\n|---|---:|---:|");
    for (k, &(w, h)) in sizes.iter().enumerate() {
        let (rh, rw) = smart_resize(h as usize, w as usize, 28, 3136, 12845056)?;
        let want = rh * rw / (28 * 28);
        ensure!(
            counts.image_tokens[k] as usize == want,
            "the {w}x{h} photo has {} image tokens, the processor's rule gives {want}",
            counts.image_tokens[k]
        );
        ensure!(stats.acc.positions[k] == counts.tokens[k], "not every position of the {w}x{h} photo was counted");
        println!("| {w}x{h} | {} | {} |", counts.image_tokens[k], counts.tokens[k]);
    }
    ensure!(stats.acc.sum_f64().iter().all(|s| s.is_finite()), "a non-finite activation sum");
    ensure!(stats.option_logits.iter().flatten().all(|v| v.is_finite()), "a non-finite option logit");
    let rss = peak_rss_kib().map_or("unknown".into(), |k| format!("{:.2} GiB", k as f64 / (1u64 << 20) as f64));
    println!("collect: {wall:.0} s wall, peak host RSS {rss} (checkpoint writing included)");
    Ok(())
}
