//! LLaVA-NeXT (Mistral and Qwen2 language models) against HF transformers' float32 outputs,
//! fed the fixture's pixel_values.
mod common;

use common::{argmax_rows, gpu, nmse, Golden};
use culturelens::models::decoder::{ForwardOptions, LogitRows};
use culturelens::models::llava_next::{LlavaImage, LlavaNextForConditionalGeneration};
use culturelens::models::{NeuronStats, PackedBatch};
use culturelens::ops::swiglu::EXCLUDED;

const CASES: [&str; 2] = ["llava_next-mistral-tiny", "llava_next-qwen2-tiny"];

fn image(g: &Golden) -> LlavaImage {
    let size = g.i64("image_sizes");
    let shape = g.shape("pixel_values");
    LlavaImage {
        pixel_values: g.f32("pixel_values"),
        crops: shape[0],
        image_size_hw: (size[0] as usize, size[1] as usize),
    }
}

fn check(what: &str, got: &[f32], want: &[f32]) {
    let e = nmse(got, want);
    eprintln!("{what}: NMSE {e:.2e}");
    assert!(e <= 1e-8, "{what}: NMSE {e:e} > 1e-8");
}

#[test]
fn vision_tower_projector_and_packing_match_hf() {
    for case in CASES {
        let g = Golden::open(case);
        let model = LlavaNextForConditionalGeneration::load(&gpu(), &g.dir).unwrap();
        let img = image(&g);
        let mut cap = Vec::new();
        let (embeds, projected) = model.image_embeds(&img, Some(&mut cap)).unwrap();
        for (i, h) in cap.iter().enumerate() {
            check(&format!("{case} vision.hidden_states.{i}"), h, &g.f32(&format!("vision.hidden_states.{i}")));
        }
        check(&format!("{case} vision.projected"), &projected, &g.f32("vision.projected"));
        assert_eq!(embeds.len(), g.f32("image_embeds").len(), "{case}: number of image features");
        check(&format!("{case} image_embeds"), &embeds, &g.f32("image_embeds"));
    }
}

/// Fast mode within docs/numerics.md's fast tolerances (vision tower included), emulated where the adapter has no tensor cores.
#[test]
fn fast_mode_matches_hf_within_fast_tolerance() {
    let fast = common::fast_gpu();
    for case in CASES {
        let g = Golden::open(case);
        let model = LlavaNextForConditionalGeneration::load(&fast, &g.dir).unwrap();
        let ids = g.ids("input_ids");
        let img = image(&g);
        let batch = PackedBatch::from_sequences(std::slice::from_ref(&ids));
        let mut cache = model.model.new_cache(ids.len()).unwrap();
        let out = model.forward(&batch, std::slice::from_ref(&img), &mut cache, &ForwardOptions::default()).unwrap();
        common::check_fast(case, &out.logits, &g.f32("logits"), model.config.text.vocab_size);
    }
}

#[test]
fn logits_hidden_states_stats_and_ablation_match_hf() {
    for case in CASES {
        let g = Golden::open(case);
        let gp = gpu();
        let model = LlavaNextForConditionalGeneration::load(&gp, &g.dir).unwrap();
        let ids = g.ids("input_ids");
        let img = image(&g);
        let images = std::slice::from_ref(&img);
        let (layers, width, v) =
            (model.config.text.num_hidden_layers, model.config.text.intermediate_size, model.config.text.vocab_size);
        let t = ids.len();
        let mut batch = PackedBatch::from_sequences(std::slice::from_ref(&ids));
        let mut cache = model.model.new_cache(t).unwrap();
        let out = model
            .forward(&batch, images, &mut cache, &ForwardOptions { capture_hidden: true, ..Default::default() })
            .unwrap();
        check(&format!("{case} logits"), &out.logits, &g.f32("logits"));
        assert_eq!(argmax_rows(&out.logits, v), argmax_rows(&g.f32("logits"), v), "{case}: argmax at every position");
        for (l, h) in out.hidden_states.iter().enumerate() {
            check(&format!("{case} hidden_states.{l}"), h, &g.f32(&format!("hidden_states.{l}")));
        }

        let image_mask = g.i64("image_token_mask");
        let stats = NeuronStats::new(&gp, 3, layers, width).unwrap();
        let rules: [&dyn Fn(usize) -> u32; 3] =
            [&|_| 0, &|i| if image_mask[i] == 0 { 1 } else { EXCLUDED }, &|i| if i + 1 == t { 2 } else { EXCLUDED }];
        for rule in rules {
            batch.token_group = (0..t).map(rule).collect();
            let mut cache = model.model.new_cache(t).unwrap();
            let opts = ForwardOptions { logits: LogitRows::None, stats: Some(&stats), ..Default::default() };
            model.forward(&batch, images, &mut cache, &opts).unwrap();
        }
        let s = stats.read().unwrap();
        let lw = layers * width;
        let counts = |k: usize| s.count_pos[k * lw..(k + 1) * lw].iter().map(|&c| c as f32).collect::<Vec<_>>();
        assert_eq!(counts(0), g.f32("stats.count_pos"), "{case}: count_pos");
        assert_eq!(counts(1), g.f32("stats.count_pos_text"), "{case}: count_pos_text");
        for (name, got) in
            [("stats.sum", &s.sum[..lw]), ("stats.sum_text", &s.sum[lw..2 * lw]), ("stats.last", &s.sum[2 * lw..])]
        {
            let want = g.f32(name);
            let rms = (want.iter().map(|&w| (w as f64).powi(2)).sum::<f64>() / want.len() as f64).sqrt();
            for (j, (&a, &b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b as f64).abs() <= 1e-5 * (b as f64).abs() + 1e-6 * rms, "{case} {name}[{j}]: {a} vs {b}");
            }
        }

        model.model.intervention.set_mask(&g.f32("ablate.mask")).unwrap();
        batch.token_group = vec![EXCLUDED; t];
        let mut cache = model.model.new_cache(t).unwrap();
        let ablated = model.forward(&batch, images, &mut cache, &ForwardOptions::default()).unwrap();
        check(&format!("{case} ablate.logits"), &ablated.logits, &g.f32("ablate.logits"));
    }
}

#[test]
fn packed_prompts_with_images_of_different_aspect_ratios_match_solo() {
    use culturelens::vision::llava_next::{num_image_tokens, preprocess, LlavaNextImageProcessorConfig};
    let g = Golden::open("llava_next-qwen2-tiny");
    let model = LlavaNextForConditionalGeneration::load(&gpu(), &g.dir).unwrap();
    let pcfg = LlavaNextImageProcessorConfig::load(&g.dir).unwrap();
    let v = model.config.text.vocab_size;
    let tok = model.llava.image_token_index;
    let ids_a = g.ids("input_ids");
    let img_a = image(&g);
    // A wide 1:4 synthetic image in a shorter prompt.
    let wide = image::RgbImage::from_fn(200, 50, |x, y| image::Rgb([(x % 256) as u8, (y * 5 % 256) as u8, 40]));
    let px = preprocess(&wide, &pcfg).unwrap();
    let n = num_image_tokens(px.image_size_hw, &pcfg, model.llava.vision.patch_size, "default");
    let img_b = LlavaImage { pixel_values: px.pixel_values, crops: px.n_crops, image_size_hw: px.image_size_hw };
    let mut ids_b = ids_a[..3].to_vec();
    ids_b.extend(std::iter::repeat_n(tok, n));
    ids_b.extend(&ids_a[ids_a.len() - 9..]);
    let seqs = [ids_a.clone(), ids_b.clone()];
    let imgs = [img_a.clone(), img_b.clone()];
    let batch = PackedBatch::from_sequences(&seqs);
    let mut cache = model.model.new_cache(batch.len()).unwrap();
    let packed = model.forward(&batch, &imgs, &mut cache, &ForwardOptions::default()).unwrap();
    for (s, (ids, img)) in seqs.iter().zip(&imgs).enumerate() {
        let solo = PackedBatch::from_sequences(std::slice::from_ref(ids));
        let mut cache = model.model.new_cache(ids.len()).unwrap();
        let alone = model.forward(&solo, std::slice::from_ref(img), &mut cache, &ForwardOptions::default()).unwrap();
        let r = batch.sequence(s);
        let e = nmse(&packed.logits[r.start * v..r.end * v], &alone.logits);
        assert!(e <= 1e-12, "prompt {s}: packed vs solo NMSE {e:e}");
    }
}
