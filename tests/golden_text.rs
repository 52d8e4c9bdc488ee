//! Qwen2 and Mistral against HF transformers' float32 outputs (tests/fixtures/*/golden.safetensors).
mod common;

use std::sync::Arc;

use common::{argmax_rows, gpu, nmse, Golden};
use culturelens::gpu::Gpu;
use culturelens::models::decoder::{Decoder, ForwardOptions, LogitRows};
use culturelens::models::{ModelConfig, NeuronStats, PackedBatch};
use culturelens::ops::swiglu::EXCLUDED;
use culturelens::weights::WeightStore;

const CASES: [&str; 2] = ["qwen2-tiny", "mistral-tiny"];

fn load(g: &Arc<Gpu>, golden: &Golden) -> Decoder {
    let cfg = ModelConfig::load(&golden.dir).unwrap();
    let store = WeightStore::open(&golden.dir).unwrap();
    Decoder::load(g, &store, &cfg.text, "model.", "lm_head.weight").unwrap()
}

fn solo(model: &Decoder, ids: &[u32], opts: &ForwardOptions<'_>) -> culturelens::models::ForwardOutput {
    let batch = PackedBatch::from_sequences(&[ids.to_vec()]);
    let mut cache = model.new_cache(ids.len()).unwrap();
    model.forward(&batch, &mut cache, opts).unwrap()
}

fn check_logits(what: &str, got: &[f32], want: &[f32], vocab: usize) {
    let e = nmse(got, want);
    eprintln!("{what}: logits NMSE {e:.2e}");
    assert!(e <= 1e-8, "{what}: logits NMSE {e:e} > 1e-8");
    assert_eq!(argmax_rows(got, vocab), argmax_rows(want, vocab), "{what}: argmax differs");
}

#[test]
fn logits_and_hidden_states_match_hf() {
    for case in CASES {
        let golden = Golden::open(case);
        let model = load(&gpu(), &golden);
        let ids = golden.ids("input_ids");
        let out = solo(&model, &ids, &ForwardOptions { capture_hidden: true, ..Default::default() });
        check_logits(case, &out.logits, &golden.f32("logits"), model.config.vocab_size);
        for (l, h) in out.hidden_states.iter().enumerate() {
            let e = nmse(h, &golden.f32(&format!("hidden_states.{l}")));
            eprintln!("{case}: hidden_states.{l} NMSE {e:.2e}");
            assert!(e <= 1e-8, "{case}: hidden_states.{l} NMSE {e:e}");
        }
        let e = nmse(&out.final_hidden, &golden.f32("final_hidden"));
        assert!(e <= 1e-8, "{case}: final_hidden NMSE {e:e}");
        let mc = golden.ids("mc.option_token_ids");
        let last = &out.logits[(ids.len() - 1) * model.config.vocab_size..];
        let opt: Vec<f32> = mc.iter().map(|&i| last[i as usize]).collect();
        common::assert_close(&format!("{case} option logits"), &opt, &golden.f32("mc.option_logits"), 1e-4, 1e-4);
    }
}

/// Fast mode (tensor-core matmuls) within docs/numerics.md's fast tolerances, emulated where the adapter has no tensor cores:
/// logits NMSE ≤ 1e-3 and the multiple-choice answer unchanged.
#[test]
fn fast_mode_matches_hf_within_fast_tolerance() {
    let fast = common::fast_gpu();
    for case in CASES {
        let golden = Golden::open(case);
        let model = load(&fast, &golden);
        let ids = golden.ids("input_ids");
        let v = model.config.vocab_size;
        let out = solo(&model, &ids, &ForwardOptions::default());
        common::check_fast(case, &out.logits, &golden.f32("logits"), v);
        let last = &out.logits[(ids.len() - 1) * v..];
        let opt: Vec<f32> = golden.ids("mc.option_token_ids").iter().map(|&i| last[i as usize]).collect();
        assert_eq!(argmax_rows(&opt, 4), argmax_rows(&golden.f32("mc.option_logits"), 4), "{case}: fast MC answer");
    }
}

#[test]
fn split_weights_give_the_same_logits() {
    // 2 KiB bindings split every matrix of the tiny models into many row chunks.
    let g = gpu().with_max_binding_bytes(2048);
    for case in CASES {
        let golden = Golden::open(case);
        let model = load(&g, &golden);
        assert!(model.embed_tokens.chunks.len() > 10 && model.layers[0].mlp.down_proj.weight.chunks.len() > 1);
        let out = solo(&model, &golden.ids("input_ids"), &ForwardOptions::default());
        check_logits(&format!("{case} split"), &out.logits, &golden.f32("logits"), model.config.vocab_size);
    }
}

/// Relative check for per-neuron sums: tight per element, scaled by the layer's typical magnitude
/// so that sums that cancel to ~0 are not held to an impossible relative bound.
fn check_sums(what: &str, got: &[f64], want: &[f32]) {
    let rms = (want.iter().map(|&w| (w as f64).powi(2)).sum::<f64>() / want.len() as f64).sqrt();
    for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w as f64).abs();
        assert!(
            err <= 1e-5 * (w as f64).abs() + 1e-6 * rms,
            "{what}[{j}]: {g} vs {w} (rel {:e})",
            err / (w as f64).abs()
        );
    }
}

#[test]
fn neuron_statistics_match_hf() {
    for case in CASES {
        let golden = Golden::open(case);
        let g = gpu();
        let model = load(&g, &golden);
        let (layers, width) = (model.config.num_hidden_layers, model.config.intermediate_size);
        let ids = golden.ids("input_ids");
        // Group 0 = every position, group 1 = last position only: two passes over the same prompt.
        let stats = NeuronStats::new(&g, 2, layers, width).unwrap();
        for group_of in [|_: usize, _: usize| 0u32, |i: usize, n: usize| if i + 1 == n { 1 } else { EXCLUDED }] {
            let mut batch = PackedBatch::from_sequences(std::slice::from_ref(&ids));
            let n = ids.len();
            batch.token_group = (0..n).map(|i| group_of(i, n)).collect();
            let mut cache = model.new_cache(n).unwrap();
            model
                .forward(
                    &batch,
                    &mut cache,
                    &ForwardOptions { logits: LogitRows::None, stats: Some(&stats), ..Default::default() },
                )
                .unwrap();
        }
        let s = stats.read().unwrap();
        let lw = layers * width;
        let count: Vec<f32> = golden.f32("stats.count_pos");
        assert_eq!(s.count_pos[..lw].iter().map(|&c| c as f32).collect::<Vec<_>>(), count, "{case}: count_pos");
        check_sums(&format!("{case} sum"), &s.sum[..lw], &golden.f32("stats.sum"));
        check_sums(&format!("{case} sum_sq"), &s.sum_sq[..lw], &golden.f32("stats.sum_sq"));
        check_sums(&format!("{case} last"), &s.sum[lw..], &golden.f32("stats.last"));
        assert_eq!(golden.f32("stats.num_positions")[0] as usize, ids.len());
    }
}

#[test]
fn ablated_logits_match_hf() {
    for case in CASES {
        let golden = Golden::open(case);
        let model = load(&gpu(), &golden);
        model.intervention.set_mask(&golden.f32("ablate.mask")).unwrap();
        assert!(model.intervention.set_mask(&[1.0; 3]).is_err(), "a mask of the wrong size is an error");
        let out = solo(&model, &golden.ids("input_ids"), &ForwardOptions::default());
        check_logits(&format!("{case} ablated"), &out.logits, &golden.f32("ablate.logits"), model.config.vocab_size);
        model.intervention.reset();
        let plain = solo(&model, &golden.ids("input_ids"), &ForwardOptions::default());
        check_logits(&format!("{case} after reset"), &plain.logits, &golden.f32("logits"), model.config.vocab_size);
    }
}

#[test]
fn packed_batch_gives_each_prompts_solo_logits() {
    for case in CASES {
        let golden = Golden::open(case);
        let model = load(&gpu(), &golden);
        let a = golden.ids("input_ids");
        // A second, different prompt of another length: the first prompt's tokens reversed, cut.
        let b: Vec<u32> = a.iter().rev().take(a.len() * 2 / 3).cloned().collect();
        let v = model.config.vocab_size;
        let packed = PackedBatch::from_sequences(&[a.clone(), b.clone(), a[..5].to_vec()]);
        let mut cache = model.new_cache(packed.len()).unwrap();
        let out = model.forward(&packed, &mut cache, &ForwardOptions::default()).unwrap();
        for (s, ids) in [a.clone(), b, a[..5].to_vec()].iter().enumerate() {
            let r = packed.sequence(s);
            let alone = solo(&model, ids, &ForwardOptions::default());
            let e = nmse(&out.logits[r.start * v..r.end * v], &alone.logits);
            assert!(e <= 1e-12, "{case}: sequence {s} packed vs solo NMSE {e:e}");
        }
    }
}

#[test]
fn kv_cache_decode_matches_full_prefill() {
    for case in CASES {
        let golden = Golden::open(case);
        let model = load(&gpu(), &golden);
        let ids = golden.ids("input_ids");
        let v = model.config.vocab_size;
        let want = golden.f32("logits");
        // Prefill all but the last 3 tokens, then feed those one at a time through the cache.
        let n = ids.len();
        let mut cache = model.new_cache(n).unwrap();
        let head = PackedBatch::from_sequences(&[ids[..n - 3].to_vec()]);
        model.forward(&head, &mut cache, &ForwardOptions { logits: LogitRows::None, ..Default::default() }).unwrap();
        for i in n - 3..n {
            let step = PackedBatch::continuation(ids[i], cache.len);
            let out = model
                .forward(&step, &mut cache, &ForwardOptions { logits: LogitRows::Rows(vec![0]), ..Default::default() })
                .unwrap();
            let e = nmse(&out.logits, &want[i * v..(i + 1) * v]);
            assert!(e <= 1e-8, "{case}: decode step {i} NMSE {e:e}");
        }
    }
}

/// Rewrites every bf16 tensor of `case` as `dtype` ("F32" or "F16") into a scratch model dir.
fn converted_checkpoint(case: &str, dtype: safetensors::Dtype) -> tempfile::TempDir {
    let src = common::fixture_dir(case);
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "generation_config.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        assert_eq!(view.dtype(), safetensors::Dtype::BF16);
        let vals = view.data().chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32());
        let out: Vec<u8> = match dtype {
            safetensors::Dtype::F32 => vals.flat_map(|v| v.to_le_bytes()).collect(),
            safetensors::Dtype::F16 => vals.flat_map(|v| half::f16::from_f32(v).to_le_bytes()).collect(),
            other => panic!("unsupported {other:?}"),
        };
        data.push((name, view.shape().to_vec(), out));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(n, s, d)| (n.clone(), safetensors::tensor::TensorView::new(dtype, s.clone(), d).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, &tmp.path().join("model.safetensors")).unwrap();
    tmp
}

#[test]
fn f32_and_f16_checkpoints_run_too() {
    for case in CASES {
        let golden = Golden::open(case);
        let ids = golden.ids("input_ids");
        for (dtype, bound) in [(safetensors::Dtype::F32, 1e-8), (safetensors::Dtype::F16, 1e-6)] {
            let dir = converted_checkpoint(case, dtype);
            let cfg = ModelConfig::load(dir.path()).unwrap();
            let store = WeightStore::open(dir.path()).unwrap();
            let model = Decoder::load(&gpu(), &store, &cfg.text, "model.", "lm_head.weight").unwrap();
            assert_eq!(
                model.layers[0].mlp.up_proj.weight.dtype.name(),
                if dtype == safetensors::Dtype::F32 { "f32" } else { "f16" }
            );
            let out = solo(&model, &ids, &ForwardOptions::default());
            // f32 holds the bf16 values exactly; f16 rounds the smallest ones.
            let e = nmse(&out.logits, &golden.f32("logits"));
            assert!(e <= bound, "{case} as {dtype:?}: NMSE {e:e}");
        }
    }
}
