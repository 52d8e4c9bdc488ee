//! Qwen2.5-VL against HF transformers' float32 outputs, fed the fixture's pixel_values.
mod common;

use common::{argmax_rows, gpu, nmse, Golden};
use culturelens::models::decoder::{ForwardOptions, LogitRows};
use culturelens::models::qwen2_5_vl::vision::VisionCapture;
use culturelens::models::qwen2_5_vl::{ImageInput, Qwen2_5_VLForConditionalGeneration, VlPrompt};
use culturelens::models::NeuronStats;
use culturelens::ops::swiglu::EXCLUDED;

const CASE: &str = "qwen2_5_vl-tiny";

fn image(g: &Golden) -> ImageInput {
    let grid = g.i64("image_grid_thw");
    ImageInput { pixel_values: g.f32("pixel_values"), grid_thw: [grid[0] as usize, grid[1] as usize, grid[2] as usize] }
}

fn check(what: &str, got: &[f32], want: &[f32]) {
    let e = nmse(got, want);
    eprintln!("{what}: NMSE {e:.2e}");
    assert!(e <= 1e-8, "{what}: NMSE {e:e} > 1e-8");
}

#[test]
fn vision_tower_matches_hf() {
    let g = Golden::open(CASE);
    let model = Qwen2_5_VLForConditionalGeneration::load(&gpu(), &g.dir).unwrap();
    let img = image(&g);
    let window: Vec<usize> = g.i64("vision.window_index").into_iter().map(|x| x as usize).collect();
    assert_eq!(model.visual.window_order(&[img.grid_thw]), window, "window permutation");
    let mut cap = VisionCapture::default();
    let embeds = model.image_embeds(std::slice::from_ref(&img), Some(&mut cap)).unwrap();
    check("vision.patch_embeds", &cap.patch_embeds, &g.f32("vision.patch_embeds"));
    for (b, h) in cap.blocks.iter().enumerate() {
        check(&format!("vision.blocks.{b}"), h, &g.f32(&format!("vision.blocks.{b}")));
    }
    check("image_embeds", &embeds, &g.f32("image_embeds"));
}

#[test]
fn mrope_positions_match_hf() {
    let g = Golden::open(CASE);
    let model = Qwen2_5_VLForConditionalGeneration::load(&gpu(), &g.dir).unwrap();
    let ids = g.ids("input_ids");
    let img = image(&g);
    let vl = model.pack(&[VlPrompt { ids: &ids, images: std::slice::from_ref(&img) }]).unwrap();
    let want = g.i64("position_ids");
    let t = ids.len();
    for axis in 0..3 {
        let got: Vec<i64> = vl.batch.positions.chunks(3).map(|p| p[axis]).collect();
        assert_eq!(got, want[axis * t..(axis + 1) * t], "position_ids axis {axis}");
    }
    assert_eq!(vl.rope_deltas, g.i64("rope_deltas"));
}

/// Fast mode within docs/numerics.md's fast tolerances (vision tower included), emulated where the adapter has no tensor cores.
#[test]
fn fast_mode_matches_hf_within_fast_tolerance() {
    let fast = common::fast_gpu();
    let g = Golden::open(CASE);
    let model = Qwen2_5_VLForConditionalGeneration::load(&fast, &g.dir).unwrap();
    let ids = g.ids("input_ids");
    let img = image(&g);
    let images = std::slice::from_ref(&img);
    let vl = model.pack(&[VlPrompt { ids: &ids, images }]).unwrap();
    let mut cache = model.model.new_cache(ids.len()).unwrap();
    let out = model.forward(&vl, images, &mut cache, &ForwardOptions::default(), None).unwrap();
    common::check_fast(CASE, &out.logits, &g.f32("logits"), model.config.text.vocab_size);
}

#[test]
fn logits_hidden_states_stats_and_ablation_match_hf() {
    let g = Golden::open(CASE);
    let gp = gpu();
    let model = Qwen2_5_VLForConditionalGeneration::load(&gp, &g.dir).unwrap();
    let ids = g.ids("input_ids");
    let img = image(&g);
    let images = std::slice::from_ref(&img);
    let (layers, width, v) =
        (model.config.text.num_hidden_layers, model.config.text.intermediate_size, model.config.text.vocab_size);
    let mut vl = model.pack(&[VlPrompt { ids: &ids, images }]).unwrap();
    let t = ids.len();

    let mut cache = model.model.new_cache(t).unwrap();
    let out = model
        .forward(&vl, images, &mut cache, &ForwardOptions { capture_hidden: true, ..Default::default() }, None)
        .unwrap();
    check("logits", &out.logits, &g.f32("logits"));
    assert_eq!(argmax_rows(&out.logits, v), argmax_rows(&g.f32("logits"), v), "argmax at every position");
    for (l, h) in out.hidden_states.iter().enumerate() {
        check(&format!("hidden_states.{l}"), h, &g.f32(&format!("hidden_states.{l}")));
    }

    // Statistics by position rule: group 0 = all, 1 = text (non-image) positions, 2 = last.
    let image_mask = g.i64("image_token_mask");
    let stats = NeuronStats::new(&gp, 3, layers, width).unwrap();
    let rules: [&dyn Fn(usize) -> u32; 3] =
        [&|_| 0, &|i| if image_mask[i] == 0 { 1 } else { EXCLUDED }, &|i| if i + 1 == t { 2 } else { EXCLUDED }];
    for rule in rules {
        vl.batch.token_group = (0..t).map(rule).collect();
        let mut cache = model.model.new_cache(t).unwrap();
        model
            .forward(
                &vl,
                images,
                &mut cache,
                &ForwardOptions { logits: LogitRows::None, stats: Some(&stats), ..Default::default() },
                None,
            )
            .unwrap();
    }
    let s = stats.read().unwrap();
    let lw = layers * width;
    let counts = |g: usize| s.count_pos[g * lw..(g + 1) * lw].iter().map(|&c| c as f32).collect::<Vec<_>>();
    assert_eq!(counts(0), g.f32("stats.count_pos"), "count_pos");
    assert_eq!(counts(1), g.f32("stats.count_pos_text"), "count_pos_text");
    for (name, got) in
        [("stats.sum", &s.sum[..lw]), ("stats.sum_text", &s.sum[lw..2 * lw]), ("stats.last", &s.sum[2 * lw..])]
    {
        let want = g.f32(name);
        let rms = (want.iter().map(|&w| (w as f64).powi(2)).sum::<f64>() / want.len() as f64).sqrt();
        for (j, (&a, &b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b as f64).abs() <= 1e-5 * (b as f64).abs() + 1e-6 * rms, "{name}[{j}]: {a} vs {b}");
        }
    }

    model.model.intervention.set_mask(&g.f32("ablate.mask")).unwrap();
    let mut cache = model.model.new_cache(t).unwrap();
    let ablated = model.forward(&vl, images, &mut cache, &ForwardOptions::default(), None).unwrap();
    check("ablate.logits", &ablated.logits, &g.f32("ablate.logits"));
}

#[test]
fn packed_image_prompts_give_each_prompts_solo_logits() {
    let g = Golden::open(CASE);
    let model = Qwen2_5_VLForConditionalGeneration::load(&gpu(), &g.dir).unwrap();
    let vc = &model.visual.config;
    let v = model.config.text.vocab_size;
    let ids_a = g.ids("input_ids");
    let img_a = image(&g);
    // A second prompt with a different image size: a 1x4x8 grid (8 merged tokens) of synthetic
    // pixels, two images' worth of tokens in one prompt to exercise several images per sequence.
    let mut r = common::rng(21);
    let grid_b = [1, 4, 8];
    let img_b = ImageInput { pixel_values: common::randn(&mut r, 32 * vc.patch_dim(), 1.5), grid_thw: grid_b };
    let img_c = ImageInput { pixel_values: common::randn(&mut r, 16 * vc.patch_dim(), 1.5), grid_thw: [1, 4, 4] };
    let mut ids_b = vec![ids_a[0], ids_a[1], vc.vision_start_token_id];
    ids_b.extend(std::iter::repeat_n(vc.image_token_id, 8));
    ids_b.extend([ids_a[5], ids_a[6], vc.vision_start_token_id]);
    ids_b.extend(std::iter::repeat_n(vc.image_token_id, 4));
    ids_b.extend(&ids_a[ids_a.len() - 6..]);
    let imgs_b = [img_b, img_c];
    let text_only: Vec<u32> = ids_a.iter().copied().filter(|&i| i != vc.image_token_id).take(20).collect();
    let prompts = [
        VlPrompt { ids: &ids_a, images: std::slice::from_ref(&img_a) },
        VlPrompt { ids: &ids_b, images: &imgs_b },
        VlPrompt { ids: &text_only, images: &[] },
    ];
    let all_images: Vec<ImageInput> = prompts.iter().flat_map(|p| p.images.iter().cloned()).collect();
    let vl = model.pack(&prompts).unwrap();
    let mut cache = model.model.new_cache(vl.batch.len()).unwrap();
    let packed = model.forward(&vl, &all_images, &mut cache, &ForwardOptions::default(), None).unwrap();
    for (s, p) in prompts.iter().enumerate() {
        let solo = model.pack(std::slice::from_ref(p)).unwrap();
        let mut cache = model.model.new_cache(solo.batch.len()).unwrap();
        let alone = model.forward(&solo, p.images, &mut cache, &ForwardOptions::default(), None).unwrap();
        let r = vl.batch.sequence(s);
        let e = nmse(&packed.logits[r.start * v..r.end * v], &alone.logits);
        assert!(e <= 1e-12, "prompt {s}: packed vs solo NMSE {e:e}");
    }
}

#[test]
fn mrope_decode_through_the_cache_matches_prefill() {
    let g = Golden::open(CASE);
    let model = Qwen2_5_VLForConditionalGeneration::load(&gpu(), &g.dir).unwrap();
    let ids = g.ids("input_ids");
    let img = image(&g);
    let (n, v) = (ids.len(), model.config.text.vocab_size);
    let head = &ids[..n - 3];
    let vl = model.pack(&[VlPrompt { ids: head, images: std::slice::from_ref(&img) }]).unwrap();
    let mut cache = model.model.new_cache(n).unwrap();
    model
        .forward(
            &vl,
            std::slice::from_ref(&img),
            &mut cache,
            &ForwardOptions { logits: LogitRows::None, ..Default::default() },
            None,
        )
        .unwrap();
    let want = g.f32("logits");
    for i in n - 3..n {
        let step = culturelens::models::PackedBatch::continuation_mrope(ids[i], cache.len, vl.rope_deltas[0]);
        let out = model
            .model
            .forward(&step, &mut cache, &ForwardOptions { logits: LogitRows::Rows(vec![0]), ..Default::default() })
            .unwrap();
        check(&format!("decode step {i}"), &out.logits, &want[i * v..(i + 1) * v]);
    }
}
