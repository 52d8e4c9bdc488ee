//! The culture-neuron pipeline on LLaVA-NeXT (LLaVA-v1.6-Mistral and Pangea layouts) through the
//! binary, against what HF transformers computes for the same 300 mini-CVQA rows
//! (tests/fixtures/pipeline-reference, made by the llava_pipeline_reference.py there):
//! prompt and image-token counts, letter logits, statistics, CAS/MAD sets, the ablation matrices
//! and every ablated example's letter logits. The weights are random, so this is about equality,
//! not effect (the planted test in pipeline_cli.rs is about effect).
mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use common::{f64s, json, nmse, root, s};
use culturelens::neurons::stats_file::StatsFile;
use culturelens::pipeline::ablated_logits::AblatedLogits;
use serde_json::Value;

fn run(args: &[&str]) -> String {
    common::ok(args).stderr
}

fn check_against_reference(case: &str) {
    let reference = json(&root().join("tests/fixtures/pipeline-reference").join(format!("{case}.json")));
    let model = root().join("tests/fixtures").join(case);
    assert!(model.is_dir(), "missing fixture {}", model.display());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let k = reference["methods"]["cas"]["k"].as_u64().unwrap().to_string();
    let started = std::time::Instant::now();
    // The reference has neither bands nor a random control; leave them out of this 300-row run.
    run(&["pipeline", "--model", s(&model), "--out", s(&out), "--methods", "cas,mad", "--k", &k, "--bands", "0"]);
    eprintln!("{case}: pipeline over 300 rows, 2 methods x 5 cultures in {:.1} s", started.elapsed().as_secs_f64());

    let stats = StatsFile::load(&out.join("stats/stats.safetensors")).unwrap();
    let meta = &stats.meta;
    assert_eq!(meta.architecture, "LlavaNextForConditionalGeneration");
    let want_ids: Vec<u32> = f64s(&reference["letter_token_ids"]).iter().map(|&x| x as u32).collect();
    assert_eq!(meta.option_token_ids, want_ids, "{case}: option-letter token ids");
    let cultures: Vec<String> =
        reference["cultures"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(meta.groups, cultures, "{case}: cultures and their order");

    // Positions and image tokens per culture: exact.
    let acc = &stats.acc;
    for (g, c) in cultures.iter().enumerate() {
        let r = &reference["stats"][c];
        let positions = r["positions"].as_u64().unwrap();
        assert_eq!(acc.positions[g], positions, "{case} {c}: counted positions");
        let counts = acc.token_counts.as_ref().expect("token counts are recorded");
        assert_eq!(counts.tokens[g], positions, "{case} {c}: prompt tokens");
        assert_eq!(counts.image_tokens[g], r["image_positions"].as_u64().unwrap(), "{case} {c}: image tokens");
    }

    // Letter logits of every example, within 1e-3 of the reference's logit range.
    let logits = AblatedLogits::load(&out).unwrap();
    let examples: HashMap<&str, &Value> =
        reference["examples"].as_array().unwrap().iter().map(|e| (e["ID"].as_str().unwrap(), e)).collect();
    assert_eq!(logits.example_ids.len(), examples.len(), "{case}: every row is scored");
    let all_ref: Vec<f64> = examples.values().flat_map(|e| f64s(&e["letter_logits"])).collect();
    let range = all_ref.iter().cloned().fold(f64::MIN, f64::max) - all_ref.iter().cloned().fold(f64::MAX, f64::min);
    let tol = 1e-3 * range;
    let worst_diff = |got: &[Vec<f32>], want: &dyn Fn(&str) -> Vec<f64>| -> f64 {
        let mut worst = 0f64;
        for (id, row) in logits.example_ids.iter().zip(got) {
            for (a, b) in row.iter().zip(want(id)) {
                worst = worst.max((*a as f64 - b).abs());
            }
        }
        worst
    };
    let worst = worst_diff(&logits.base, &|id| f64s(&examples[id]["letter_logits"]));
    eprintln!("{case}: base letter logits within {worst:.2e} of HF (range {range:.3}, bound {tol:.2e})");
    assert!(worst <= tol, "{case}: base letter logits differ by {worst} > {tol}");

    // Statistics: count_pos within 0.5 % of a culture's positions, Σa and Σa² NMSE ≤ 1e-6.
    let gs = acc.group_stats();
    let n = gs.layers * gs.width;
    for (g, c) in cultures.iter().enumerate() {
        let r = &reference["stats"][c];
        let positions = r["positions"].as_f64().unwrap();
        let counts = f64s(&r["count_positive"]);
        let worst_count =
            gs.count_pos[g * n..(g + 1) * n].iter().zip(&counts).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst_count <= 0.005 * positions, "{case} {c}: count_pos off by {worst_count} of {positions}");
        let e_sum = nmse(&gs.sum[g * n..(g + 1) * n], &f64s(&r["sum_act"]));
        let e_sq = nmse(&gs.sum_sq[g * n..(g + 1) * n], &f64s(&r["sum_sq"]));
        eprintln!("{case} {c}: count_pos off by at most {worst_count}, sum NMSE {e_sum:.1e}, sum_sq NMSE {e_sq:.1e}");
        assert!(e_sum <= 1e-6 && e_sq <= 1e-6, "{case} {c}: sum NMSE {e_sum:e}, sum_sq NMSE {e_sq:e}");
    }

    // Neuron sets, matrices and ablated logits per method.
    let summary = json(&out.join("summary.json"));
    let per_culture: Vec<f64> =
        cultures.iter().map(|c| logits.example_group.iter().filter(|&&g| cultures[g] == *c).count() as f64).collect();
    for method in ["cas", "mad"] {
        let r = &reference["methods"][method];
        let sets = json(&out.join("neurons").join(format!("neurons_{method}.json")));
        let mut identical = Vec::new();
        for (g, set) in sets["sets"].as_array().unwrap().iter().enumerate() {
            let c = &cultures[g];
            assert_eq!(set["group"].as_str().unwrap(), c);
            let ours: BTreeSet<(u64, u64)> = set["neurons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
                .collect();
            let theirs: BTreeSet<(u64, u64)> = r["neurons"][c]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
                .collect();
            let overlap = ours.intersection(&theirs).count() as f64 / theirs.len().max(1) as f64;
            eprintln!(
                "{case} {method} {c}: {} of {} reference neurons",
                ours.intersection(&theirs).count(),
                theirs.len()
            );
            assert!(overlap >= 0.9, "{case} {method} {c}: overlap {overlap}");
            identical.push(ours == theirs);
        }
        let matrix = &summary["methods"][method]["matrix"];
        let mut worst_cell = 0f64;
        for (a, ca) in cultures.iter().enumerate() {
            for (e, ce) in cultures.iter().enumerate() {
                let got = matrix[a][e].as_f64().unwrap();
                let want = r["matrix"][ca][ce].as_f64().unwrap();
                worst_cell = worst_cell.max((got - want).abs() * per_culture[e]);
            }
        }
        eprintln!("{case} {method}: worst matrix cell off by {worst_cell:.1} examples");
        assert!(worst_cell <= 2.0 + 1e-9, "{case} {method}: a matrix cell is off by {worst_cell} examples");
        // Example by example where the two sets are the same neurons (all of them today: the
        // overlap above is 14/14 and 16/16, so this never checks nothing).
        assert!(identical.iter().any(|&i| i), "{case} {method}: no culture's set equals the reference's");
        let ablated = &logits.methods[method];
        for (g, c) in cultures.iter().enumerate().filter(|(g, _)| identical[*g]) {
            let worst = worst_diff(&ablated[g], &|id| f64s(&r["ablated_letter_logits"][c][id]));
            assert!(worst <= tol, "{case} {method} {c}: ablated letter logits differ by {worst} > {tol}");
        }
        eprintln!(
            "{case} {method}: ablated letter logits checked for the {} of {} cultures whose sets equal the reference's",
            identical.iter().filter(|&&i| i).count(),
            cultures.len()
        );
    }
}

#[test]
fn llava_v1_6_mistral_layout_matches_hf() {
    check_against_reference("llava_next-mistral-tiny");
}

#[test]
fn pangea_layout_matches_hf() {
    check_against_reference("llava_next-qwen2-tiny");
}

/// Prompts with images of different aspect ratios packed into one batch give what each gives
/// alone: letter logits, positions and which activations are positive.
#[test]
fn packed_collect_equals_solo_collect() {
    for case in ["llava_next-mistral-tiny", "llava_next-qwen2-tiny"] {
        let model = root().join("tests/fixtures").join(case);
        let tmp = tempfile::tempdir().unwrap();
        let collect = |name: &str, budget: &str| -> StatsFile {
            let out: PathBuf = tmp.path().join(name);
            run(&["collect", "--model", s(&model), "--limit", "4", "--batch-tokens", budget, "--out", s(&out)]);
            StatsFile::load(&out.join("stats.safetensors")).unwrap()
        };
        let solo = collect("solo", "1");
        let packed = collect("packed", "100000");
        for (a, b) in solo.option_logits.iter().zip(&packed.option_logits) {
            common::assert_close(&format!("{case}: letter logits packed vs solo"), b, a, 1e-5, 1e-5);
        }
        assert_eq!(solo.acc.positions, packed.acc.positions);
        assert_eq!(solo.acc.token_counts, packed.acc.token_counts);
        assert_eq!(solo.acc.count_pos, packed.acc.count_pos, "{case}: packing changes no activation's sign");
        let (a, b) = (solo.acc.sum_f64(), packed.acc.sum_f64());
        let e = nmse(&b, &a);
        assert!(e <= 1e-12, "{case}: sums packed vs solo NMSE {e:e}");
    }
}

/// The position rules count what they say on LLaVA-NeXT prompts, and the intervention modes run:
/// `--scale 0` is zero ablation to the bit, `--mode mean` is recorded as such.
#[test]
fn position_rules_and_intervention_modes() {
    let model = root().join("tests/fixtures/llava_next-qwen2-tiny");
    let tmp = tempfile::tempdir().unwrap();
    let collect = |rule: &str| -> StatsFile {
        let out = tmp.path().join(rule);
        run(&["collect", "--model", s(&model), "--limit", "3", "--positions", rule, "--out", s(&out)]);
        StatsFile::load(&out.join("stats.safetensors")).unwrap()
    };
    let all = collect("all");
    let image = collect("image");
    let text = collect("text");
    let last = collect("last");
    let counts = all.acc.token_counts.clone().expect("token counts are recorded");
    assert_eq!(all.acc.positions, counts.tokens);
    assert_eq!(image.acc.positions, counts.image_tokens);
    let text_tokens: Vec<u64> = counts.tokens.iter().zip(&counts.image_tokens).map(|(t, i)| t - i).collect();
    assert_eq!(text.acc.positions, text_tokens);
    assert_eq!(last.acc.positions, vec![3; 5], "one position per row");
    assert!(counts.image_tokens.iter().all(|&n| n > 0));

    let neurons = tmp.path().join("neurons");
    run(&["identify", "--stats", s(&tmp.path().join("all")), "--method", "cas,mad", "--k", "5", "--out", s(&neurons)]);
    let ablate = |name: &str, extra: &[&str]| -> AblatedLogits {
        let out = tmp.path().join(name);
        let mut args = vec!["ablate", "--model", s(&model), "--limit", "3", "--neurons", s(&neurons), "--method"];
        args.extend(["cas,mad", "--out", s(&out)]);
        args.extend(extra);
        run(&args);
        assert_eq!(json(&out.join("ablation.json"))["extras"]["mode"], name.replace('_', " "));
        AblatedLogits::load(&out).unwrap()
    };
    let zero = ablate("zero", &[]);
    let scale0 = ablate("scale_0", &["--scale", "0"]);
    assert!(zero == scale0, "--scale 0 must equal zero ablation exactly");
    let mean = ablate("mean", &["--mode", "mean"]);
    assert_eq!(mean.base, zero.base);
    assert_ne!(mean.methods["cas"], zero.methods["cas"], "mean ablation shifts the neurons, zero does not");
}
