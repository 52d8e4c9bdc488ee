//! No single-binding limits: prompts whose [tokens, intermediate] activations exceed a storage
//! binding run in token chunks, and accumulators of many cultures run in blocks of groups.
//! What fits one binding still runs in one piece (the golden tests hold those bits); what does
//! not is checked against a CPU reference, and the blocked accumulators against one block.
mod common;

use std::sync::Arc;

use common::gpu;
use culturelens::gpu::{Gpu, WeightDType, WeightTensor};
use culturelens::models::decoder::{Attention, Decoder, DecoderLayer, ForwardOptions, Linear, LogitRows, Mlp};
use culturelens::models::{ModelConfig, NeuronStats, PackedBatch, TextConfig};
use culturelens::ops::attention::{attention_ref, AttentionShape};
use culturelens::ops::matmul::matmul_ref;
use culturelens::ops::rmsnorm::rmsnorm_ref;
use culturelens::ops::rope::{inv_freq, rope_ref, rope_tables};
use culturelens::ops::swiglu::silu;
use culturelens::weights::WeightStore;
use rand::Rng;

/// A decoder with random bf16 weights (the same in every layer), kept on the host (as f32 of
/// the bf16 values) for the CPU reference of layer 0.
struct Model {
    c: TextConfig,
    embed: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    o: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    down: Vec<f32>,
    head: Vec<f32>,
}

fn bf16_matrix(rng: &mut rand::rngs::StdRng, rows: usize, cols: usize, scale: f32) -> Vec<f32> {
    (0..rows * cols).map(|_| half::bf16::from_f32((rng.gen::<f32>() * 2.0 - 1.0) * scale).to_f32()).collect()
}

impl Model {
    fn new(c: TextConfig) -> Model {
        let mut r = common::rng(11);
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let (qd, kvd) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        Model {
            embed: bf16_matrix(&mut r, c.vocab_size, h, 1.0),
            q: bf16_matrix(&mut r, qd, h, 0.3),
            k: bf16_matrix(&mut r, kvd, h, 0.3),
            v: bf16_matrix(&mut r, kvd, h, 0.3),
            o: bf16_matrix(&mut r, h, qd, 0.2),
            gate: bf16_matrix(&mut r, i, h, 0.25),
            up: bf16_matrix(&mut r, i, h, 0.25),
            down: bf16_matrix(&mut r, h, i, 0.01),
            head: bf16_matrix(&mut r, c.vocab_size, h, 0.2),
            c,
        }
    }

    fn upload(&self, g: &Arc<Gpu>) -> Decoder {
        let w = |name: &str, v: &[f32], rows: usize| {
            let bytes: Vec<u8> = v.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect();
            WeightTensor::upload(g, name, WeightDType::BF16, rows, v.len() / rows, &bytes).unwrap()
        };
        let lin = |name: &str, v: &[f32], rows: usize| Linear { weight: w(name, v, rows), bias: None };
        let c = &self.c;
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let ones = || g.storage_from("norm", &vec![1.0f32; h]).unwrap();
        // Every layer gets the same weights; the CPU reference checks layer 0.
        let layers = (0..c.num_hidden_layers)
            .map(|_| DecoderLayer {
                self_attn: Attention {
                    q_proj: lin("q", &self.q, c.num_attention_heads * c.head_dim),
                    k_proj: lin("k", &self.k, c.num_key_value_heads * c.head_dim),
                    v_proj: lin("v", &self.v, c.num_key_value_heads * c.head_dim),
                    o_proj: lin("o", &self.o, h),
                },
                mlp: Mlp {
                    gate_proj: lin("gate", &self.gate, i),
                    up_proj: lin("up", &self.up, i),
                    down_proj: lin("down", &self.down, h),
                },
                input_layernorm: ones(),
                post_attention_layernorm: ones(),
            })
            .collect();
        let embed = w("embed", &self.embed, c.vocab_size);
        let head = w("head", &self.head, c.vocab_size);
        Decoder::from_parts(g, c, embed, layers, ones(), Some(head)).unwrap()
    }

    /// The residual stream after attention and its post-attention norm, [T, H] each.
    fn attention_half(&self, batch: &PackedBatch) -> (Vec<f32>, Vec<f32>) {
        let c = &self.c;
        let (h, t) = (c.hidden_size, batch.len());
        let ones = vec![1.0f32; h];
        let x: Vec<f32> =
            batch.tokens.iter().flat_map(|&id| self.embed[id as usize * h..(id as usize + 1) * h].to_vec()).collect();
        let xn = rmsnorm_ref(&x, &ones, h, c.rms_norm_eps);
        let (qd, kvd) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        let tables = rope_tables(&batch.positions, 1, &inv_freq(c.head_dim, c.rope_theta), &vec![0; c.head_dim / 2]);
        let q = rope_ref(&matmul_ref(&xn, &self.q, None, t, qd, h), &tables, c.num_attention_heads, c.head_dim);
        let k = rope_ref(&matmul_ref(&xn, &self.k, None, t, kvd, h), &tables, c.num_key_value_heads, c.head_dim);
        let v = matmul_ref(&xn, &self.v, None, t, kvd, h);
        let shape = AttentionShape {
            tokens: t,
            heads: c.num_attention_heads,
            kv_heads: c.num_key_value_heads,
            head_dim: c.head_dim,
            max_keys: t,
        };
        let attn = attention_ref(&q, &k, &v, &batch.kv_ranges(0, None), shape, 1.0 / (c.head_dim as f32).sqrt());
        let o = matmul_ref(&attn, &self.o, None, t, h, qd);
        let h1: Vec<f32> = x.iter().zip(&o).map(|(a, b)| a + b).collect();
        let xn2 = rmsnorm_ref(&h1, &ones, h, c.rms_norm_eps);
        (h1, xn2)
    }

    /// Logits of token `t` (one layer: only its own MLP matters for them).
    fn logits_at(&self, batch: &PackedBatch, t: usize) -> Vec<f32> {
        let c = &self.c;
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let (h1, xn2) = self.attention_half(batch);
        let x = &xn2[t * h..(t + 1) * h];
        let act: Vec<f32> = (0..i)
            .map(|j| {
                let dot =
                    |w: &[f32]| w[j * h..(j + 1) * h].iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>();
                silu(dot(&self.gate) as f32) * dot(&self.up) as f32
            })
            .collect();
        let down = matmul_ref(&act, &self.down, None, 1, h, i);
        let h2: Vec<f32> = h1[t * h..(t + 1) * h].iter().zip(&down).map(|(a, b)| a + b).collect();
        let normed = rmsnorm_ref(&h2, &vec![1.0; h], h, c.rms_norm_eps);
        matmul_ref(&normed, &self.head, None, 1, c.vocab_size, h)
    }

    /// silu(gate) of neuron `j` at every token.
    fn activations(&self, xn2: &[f32], j: usize) -> Vec<f64> {
        let h = self.c.hidden_size;
        let w = &self.gate[j * h..(j + 1) * h];
        xn2.chunks(h)
            .map(|x| silu(w.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() as f32) as f64)
            .collect()
    }
}

/// Hidden 64 and a very wide MLP. Widths stay below 65536: llvmpipe ends any shader loop after
/// 65535 iterations, and the matmul walks K in one loop (real models' K is at most ~19k).
fn wide_config(layers: usize, intermediate: usize) -> TextConfig {
    TextConfig {
        hidden_size: 64,
        intermediate_size: intermediate,
        num_hidden_layers: layers,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 16,
        vocab_size: 96,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        tie_word_embeddings: false,
        qkv_bias: false,
        sliding_window: None,
        max_position_embeddings: 4096,
        mrope_section: None,
    }
}

/// One prompt whose [tokens, intermediate] activations (520 x 65000 f32, 129 MiB) exceed
/// lavapipe's 128 MiB binding: it runs in token chunks and its logits match the CPU reference.
#[test]
fn a_prompt_past_the_binding_limit_matches_the_cpu_reference() {
    let g = gpu();
    let model = Model::new(wide_config(1, 65_000));
    let decoder = model.upload(&g);
    let i = model.c.intermediate_size;
    let t = (g.limits.max_storage_buffer_binding_size as usize / (i * 4) + 5).max(520);
    assert!(t * i * 4 > 128 << 20 && decoder.max_chunk_tokens() < t, "the prompt must not fit one binding");
    let ids: Vec<u32> = (0..t).map(|k| ((k * 37 + 11) % model.c.vocab_size) as u32).collect();
    let batch = PackedBatch::from_sequences(std::slice::from_ref(&ids));
    let mut cache = decoder.new_cache(t).unwrap();
    let rows = [t - 1, 0, 7, decoder.max_chunk_tokens()];
    let opts =
        ForwardOptions { logits: LogitRows::Rows(rows.iter().map(|&r| r as u32).collect()), ..Default::default() };
    let out = decoder.forward(&batch, &mut cache, &opts).unwrap();
    let v = model.c.vocab_size;
    for (k, &row) in rows.iter().enumerate() {
        let want = model.logits_at(&batch, row);
        common::assert_close(
            &format!("logits of token {row} of {t}"),
            &out.logits[k * v..(k + 1) * v],
            &want,
            2e-4,
            2e-4,
        );
    }
}

/// 40 cultures on a model whose accumulators ([40, 3, 60000, 5] u32, 137 MiB) exceed lavapipe's
/// 128 MiB binding: they run in blocks of groups, and every culture's statistics of layer 0
/// match the CPU reference.
#[test]
fn forty_cultures_past_the_binding_limit_match_the_cpu_reference() {
    let g = gpu();
    let model = Model::new(wide_config(3, 60_000));
    let decoder = model.upload(&g);
    let (l, i) = (model.c.num_hidden_layers, model.c.intermediate_size);
    let groups = 40;
    let seqs: Vec<Vec<u32>> = (0..groups)
        .map(|gi| (0..5 + gi % 4).map(|k| ((gi * 7 + k * 13) % model.c.vocab_size) as u32).collect())
        .collect();
    let mut batch = PackedBatch::from_sequences(&seqs);
    for s in 0..groups {
        batch.set_group(s, s as u32);
    }
    let stats = NeuronStats::new(&g, groups, l, i).unwrap();
    let limit = g.limits.max_storage_buffer_binding_size as usize;
    assert!(groups * l * i * 5 * 4 > limit && stats.blocks().len() > 1, "accumulators must span several bindings");
    let mut cache = decoder.new_cache(batch.len()).unwrap();
    let opts = ForwardOptions { logits: LogitRows::None, stats: Some(&stats), ..Default::default() };
    decoder.forward(&batch, &mut cache, &opts).unwrap();
    let got = stats.read().unwrap();
    let (_, xn2) = model.attention_half(&batch);
    for j in (0..i).step_by(997).chain([i - 1]) {
        let a = model.activations(&xn2, j);
        for s in 0..groups {
            let r = batch.sequence(s);
            let (count, sum) = (a[r.clone()].iter().filter(|&&x| x > 0.0).count() as u64, a[r].iter().sum::<f64>());
            let k = s * l * i + j;
            assert!(
                got.count_pos[k].abs_diff(count) <= 1,
                "group {s} neuron {j}: count {} vs {count}",
                got.count_pos[k]
            );
            assert!(
                (got.sum[k] - sum).abs() <= 1e-4 * (1.0 + sum.abs()),
                "group {s} neuron {j}: sum {} vs {sum}",
                got.sum[k]
            );
        }
    }
    // Later layers were counted too, for every culture.
    assert!((0..groups).all(|s| got.count_pos[s * l * i + 2 * i..(s * l + 3) * i].iter().any(|&c| c > 0)));
}

/// Accumulators cut into many blocks of groups hold the same bits as one block, and a pass cut
/// into token chunks gives what one pass gives (to rounding: the matmul kernel depends on the
/// row count).
#[test]
fn group_blocks_keep_the_bits_and_token_chunks_keep_the_values() {
    let dir = common::fixture_dir("qwen2-tiny");
    let cfg = ModelConfig::load(&dir).unwrap();
    let (layers, width) = (cfg.text.num_hidden_layers, cfg.text.intermediate_size);
    let load = |g: &Arc<Gpu>| {
        Decoder::load(g, &WeightStore::open(&dir).unwrap(), &cfg.text, "model.", "lm_head.weight").unwrap()
    };
    let per_group = (layers * width * 5 * 4) as u64;
    let whole = gpu();
    let small = whole.with_max_binding_bytes(3 * per_group);
    let groups = 10;
    let seqs: Vec<Vec<u32>> =
        (0..groups).map(|s| (0..20 + s).map(|k| ((s * 31 + k * 7) % 600) as u32).collect()).collect();
    let mut batch = PackedBatch::from_sequences(&seqs);
    for s in 0..groups {
        batch.set_group(s, s as u32);
    }
    let run = |decoder: &Decoder, stats: &NeuronStats| {
        let mut cache = decoder.new_cache(batch.len()).unwrap();
        let opts =
            ForwardOptions { logits: LogitRows::Rows(batch.last_tokens()), stats: Some(stats), ..Default::default() };
        let out = decoder.forward(&batch, &mut cache, &opts).unwrap();
        (out.logits, stats.read_words().unwrap())
    };
    // Same decoder (same chunks), one block of accumulators against four.
    let chunked = load(&small);
    assert!(chunked.max_chunk_tokens() < batch.len(), "the small binding must cut the batch into chunks");
    let one_block = NeuronStats::new(&whole, groups, layers, width).unwrap();
    let four_blocks = NeuronStats::new(&small, groups, layers, width).unwrap();
    assert_eq!((one_block.blocks().len(), four_blocks.blocks().len()), (1, 4));
    let (logits_a, words_a) = run(&chunked, &one_block);
    let (logits_b, words_b) = run(&chunked, &four_blocks);
    assert_eq!(logits_a, logits_b);
    assert!(words_a == words_b, "blocked accumulators differ from one block");

    // Chunked against one pass.
    let one_pass = load(&whole);
    assert!(one_pass.max_chunk_tokens() >= batch.len());
    let stats = NeuronStats::new(&whole, groups, layers, width).unwrap();
    let (logits_c, _) = run(&one_pass, &stats);
    common::assert_close("chunked vs one-pass logits", &logits_a, &logits_c, 1e-5, 1e-5);
    let (a, c) = (stats.read().unwrap(), NeuronStats::read(&one_block).unwrap());
    for k in 0..a.sum.len() {
        assert!(a.count_pos[k].abs_diff(c.count_pos[k]) <= 1, "count {k}");
        assert!((a.sum[k] - c.sum[k]).abs() <= 1e-5 * (1.0 + a.sum[k].abs()), "sum {k}: {} vs {}", a.sum[k], c.sum[k]);
    }
}

/// The Qwen2.5-VL vision tower runs its MLP in row blocks when [patches, intermediate] would
/// not fit one binding (a 3-megapixel photo at 7B widths): same image embeddings as HF.
#[test]
fn vision_mlp_in_row_blocks_matches_hf() {
    use culturelens::models::qwen2_5_vl::{ImageInput, Qwen2_5_VLForConditionalGeneration};
    let golden = common::Golden::open("qwen2_5_vl-tiny");
    let grid = golden.i64("image_grid_thw");
    let img = ImageInput {
        pixel_values: golden.f32("pixel_values"),
        grid_thw: [grid[0] as usize, grid[1] as usize, grid[2] as usize],
    };
    // 40 patches' activations per binding: 60 patches run as blocks of 40 and 20.
    let vc = ModelConfig::load(&golden.dir).unwrap().vision.unwrap();
    let g = gpu().with_max_binding_bytes((40 * vc.intermediate_size * 4) as u64);
    let model = Qwen2_5_VLForConditionalGeneration::load(&g, &golden.dir).unwrap();
    let embeds = model.image_embeds(std::slice::from_ref(&img), None).unwrap();
    let e = common::nmse(&embeds, &golden.f32("image_embeds"));
    assert!(e <= 1e-8, "image embeds in row blocks: NMSE {e:e}");
}
