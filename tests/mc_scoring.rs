//! Multiple-choice scoring on the bundled trained tiny Qwen2.5-VL and mini-CVQA test rows:
//! prompts through the chat template, option-letter ids, packing, statistics bookkeeping.
mod common;

use std::path::Path;

use common::gpu;
use culturelens::eval::dataset::{group, load_examples, GroupBy, Lang};
use culturelens::eval::mc::{option_token_ids, pick, PositionRule};
use culturelens::eval::score::{score_examples, ScoreOptions};
use culturelens::models::{NeuronStats, VisionLanguageModel};
use culturelens::text::TextProcessor;

#[test]
fn packed_scoring_equals_one_at_a_time_and_counts_positions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("assets/models/culture-tiny-qwen2_5_vl");
    let rows = load_examples(&root.join("assets/data/mini-cvqa/test.parquet"), Lang::En).unwrap();
    let grouped = group(rows, GroupBy::Country, 1, None, Some(4)).unwrap();
    assert_eq!(grouped.names, ["Japan", "Kenya", "Mexico", "India", "Ireland"]);
    let g = gpu();
    let model = VisionLanguageModel::load(&g, &dir).unwrap();
    let text = TextProcessor::load(&dir).unwrap();
    let letters = option_token_ids(&text, 4).unwrap();
    assert_eq!(letters, vec![32, 33, 34, 35], "A-D as the model card documents");
    let (layers, width) = (model.config().text.num_hidden_layers, model.config().text.intermediate_size);

    let run = |budget: usize, rule: PositionRule| {
        let stats = NeuronStats::new(&g, grouped.names.len(), layers, width).unwrap();
        let opts = ScoreOptions { stats: Some(&stats), rule, max_batch_tokens: budget };
        let s = score_examples(&model, &text, &grouped.examples, &letters, &opts, |_, _| {}).unwrap();
        (s, stats.read().unwrap())
    };
    let (solo, solo_stats) = run(1, PositionRule::All);
    let (packed, packed_stats) = run(4096, PositionRule::All);
    for (a, b) in solo.option_logits.iter().zip(&packed.option_logits) {
        common::assert_close("option logits packed vs solo", a, b, 1e-5, 1e-5);
    }
    assert_eq!(solo.positions, packed.positions);
    assert_eq!(solo_stats.count_pos, packed_stats.count_pos, "packing does not change which activations are positive");
    // 5 cultures x 4 prompts of 75-93 tokens each, every position counted under the `all` rule.
    assert!(packed.positions.iter().all(|&n| (4 * 75..=4 * 93).contains(&n)), "{:?}", packed.positions);
    // Under `last`, one position per prompt; every neuron's count is at most that.
    let (_, last_stats) = run(4096, PositionRule::Last);
    assert!(last_stats.count_pos.iter().all(|&c| c <= 4));
    // The trained model is far above chance (25%) on these rows.
    let correct =
        grouped.examples.iter().zip(&packed.option_logits).filter(|((_, ex), l)| Some(pick(l)) == ex.label).count();
    assert!(correct * 100 >= grouped.examples.len() * 60, "{correct}/{} correct", grouped.examples.len());
}

/// Image features cached on the host (as ablation passes reuse them) and features computed in
/// the same pass give the same letter logits to the bit, also when a batch mixes the two.
#[test]
fn cached_and_fresh_image_features_give_identical_logits() {
    use culturelens::eval::score::{prepare_all, score_prepared};
    use culturelens::models::Pixels;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rows = load_examples(&root.join("assets/data/mini-cvqa/test.parquet"), Lang::En).unwrap();
    let grouped = group(rows, GroupBy::Country, 1, None, Some(2)).unwrap();
    let g = gpu();
    for case in ["llava_next-mistral-tiny", "qwen2_5_vl-tiny"] {
        let dir = common::fixture_dir(case);
        let model = VisionLanguageModel::load(&g, &dir).unwrap();
        let text = TextProcessor::load(&dir).unwrap();
        let letters = option_token_ids(&text, 4).unwrap();
        let opts = ScoreOptions { stats: None, rule: PositionRule::All, max_batch_tokens: 4096 };
        let mut prepared = prepare_all(&model, &text, &Default::default(), &grouped.examples).unwrap();
        let fresh = score_prepared(&model, &prepared, &letters, &opts, |_, _| {}).unwrap();
        let half: Vec<&Pixels> = prepared.iter().step_by(2).filter_map(|p| p.image.as_ref()).collect();
        let features = model.image_features(&half).unwrap();
        for (p, f) in prepared.iter_mut().step_by(2).zip(features) {
            p.image_features = Some(f);
        }
        let mixed = score_prepared(&model, &prepared, &letters, &opts, |_, _| {}).unwrap();
        assert_eq!(fresh.option_logits, mixed.option_logits, "{case}: cached features change the logits");
    }
}
