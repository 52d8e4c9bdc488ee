//! The fused ablation (every neuron set of every method in shared passes, the layers below the
//! first one a pass's sets touch run once) against one plain pass per set, the way `ablate` ran
//! before fusion: the same letter logits to the bit, hence the same matrices. On the bundled
//! trained Qwen2.5-VL (real CAS/LAP/LAPE/MAD sets, which touch layer 0, and the same sets cut
//! to the upper layers, which exercise the shared prefix) and, through the binary, on a
//! LLaVA-NeXT checkpoint.
mod common;

use common::{gpu, ok, root, s};
use culturelens::eval::mc::PositionRule;
use culturelens::eval::score::{cache_image_features, FusedCounts};
use culturelens::neurons::methods::k_from_fraction;
use culturelens::neurons::stats_file::StatsFile;
use culturelens::neurons::Method;
use culturelens::pipeline::ablate::{Ablation, Mode, Study};
use culturelens::pipeline::ablated_logits::AblatedLogits;
use culturelens::pipeline::collect::{collect_loaded, CollectOptions};
use culturelens::pipeline::identify::{neuron_sets, NeuronSets};
use culturelens::pipeline::model::CultureModel;

fn bits(a: &Ablation) -> Vec<Vec<Vec<Vec<u32>>>> {
    a.logits
        .methods
        .values()
        .map(|m| m.iter().map(|s| s.iter().map(|r| r.iter().map(|x| x.to_bits()).collect()).collect()).collect())
        .collect()
}

#[test]
fn fused_ablation_equals_one_pass_per_set_to_the_bit() {
    let gpu = gpu();
    let model_dir = root().join("assets/models/culture-tiny-qwen2_5_vl");
    let data = common::mini_cvqa_test(Some(12));
    let sel = data.load().unwrap();
    let model = CultureModel::load(&gpu, &model_dir.display().to_string(), 4).unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = CollectOptions {
        model: model.name.clone(),
        data,
        rule: PositionRule::All,
        out: out.path().to_path_buf(),
        chunk_examples: 200,
        min_checkpoint_seconds: 0.0,
        max_batch_tokens: 4096,
        shard: (0, 1),
        weighting: Default::default(),
        progress: false,
    };
    let path = collect_loaded(&gpu, &model, &sel, &o).unwrap();
    let stats = StatsFile::load(&path).unwrap();
    let (l, w) = (stats.meta.layers, stats.meta.width);
    let k = k_from_fraction(l * w, 0.03);
    let mut sets: Vec<(std::path::PathBuf, NeuronSets)> = Method::EVERY
        .into_iter()
        .filter(|&m| m != Method::Random)
        .map(|m| (path.clone(), neuron_sets(&stats, &path, m, k, 0.01, Default::default())))
        .collect();
    // The same CAS sets cut to the upper half of the layers: a shared prefix of l/2 layers.
    let mut upper = sets[0].1.clone();
    upper.method = "cas-upper".into();
    for set in &mut upper.sets {
        set.neurons.retain(|&[li, _]| li >= l / 2);
    }
    assert!(upper.sets.iter().all(|s| !s.neurons.is_empty()), "every culture keeps upper-layer neurons");
    sets.push((path.clone(), upper));

    let mut prepared = model.prepare(&sel.grouped.examples).unwrap();
    cache_image_features(&model.vlm, &mut prepared, 1 << 30).unwrap();
    let study = |max_fused_tokens: usize| Study {
        model: &model,
        examples: &sel.grouped.examples,
        prepared: prepared.clone(),
        groups: &stats.meta.groups,
        dataset: "mini-cvqa test".into(),
        position_rule: "all".into(),
        base_logits: stats.option_logits.clone(),
        pooled_mean: Some(stats.acc.pooled_mean()),
        weighting: "token".into(),
        max_batch_tokens: 1500,
        max_fused_tokens,
        progress: false,
        fused: Default::default(),
    };
    for mode in [Mode::Zero, Mode::Mean, Mode::Scale(2.5)] {
        let plain = study(0);
        let want = plain.run(&sets, mode).unwrap();
        let fused = study(1 << 20);
        let got = fused.run(&sets, mode).unwrap();
        assert_eq!(bits(&got), bits(&want), "{mode:?}: fused letter logits differ from one pass per set");
        for (m, s) in &want.summary.methods {
            assert_eq!(got.summary.methods[m].matrix, s.matrix, "{mode:?} {m}: matrix");
        }
        let (p, f): (FusedCounts, FusedCounts) = (plain.fused.into_inner().unwrap(), fused.fused.into_inner().unwrap());
        assert_eq!(p.passes, p.unfused_passes, "fusion off runs one pass per set");
        assert_eq!(p.token_layers, p.unfused_token_layers);
        assert!(f.passes < f.unfused_passes, "{mode:?}: {f:?}");
        // The upper-half sets share their lower layers once per batch.
        assert!(f.token_layers < f.unfused_token_layers, "{mode:?}: {f:?}");
        eprintln!(
            "{mode:?}: {} passes instead of {}, {} of {} token-layers",
            f.passes, f.unfused_passes, f.token_layers, f.unfused_token_layers
        );
    }
}

/// LLaVA-NeXT (another family, sequential positions, anyres images) through the binary:
/// `ablate --fused-tokens 0` (one pass per set) and the default write the same files.
#[test]
fn llava_next_fused_ablation_writes_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::fixture_dir("llava_next-mistral-tiny");
    let data = root().join("assets/data/mini-cvqa/test.parquet");
    let (stats, neurons) = (tmp.path().join("stats"), tmp.path().join("neurons"));
    let base = ["--model", s(&model), "--data", s(&data), "--limit", "6"];
    ok(&[&["collect", "--out", s(&stats)], &base[..]].concat());
    ok(&["identify", "--stats", s(&stats), "--method", "cas,mad", "--k", "12", "--out", s(&neurons)]);
    let run = |name: &str, fused: &str| {
        let out = tmp.path().join(name);
        let o =
            ok(&[&["ablate", "--neurons", s(&neurons), "--fused-tokens", fused, "--out", s(&out)], &base[..]].concat());
        (out, o.stderr)
    };
    let (plain, _) = run("plain", "0");
    let (fused, log) = run("fused", "65536");
    assert!(log.contains("passes instead of"), "ablate reports the passes it saved:\n{log}");
    let (a, b) =
        (std::fs::read(plain.join("ablation.json")).unwrap(), std::fs::read(fused.join("ablation.json")).unwrap());
    assert!(a == b, "ablation.json differs between fused and one pass per set");
    // Compared as values: the file's metadata keys come out in hash order, which varies by run.
    let load = |d: &std::path::Path| AblatedLogits::load(&d.join("ablated_logits.safetensors")).unwrap();
    let (a, b) = (load(&plain), load(&fused));
    assert_eq!(a.example_ids, b.example_ids);
    let bits = |l: &AblatedLogits| -> Vec<u32> {
        l.base.iter().chain(l.methods.values().flatten().flatten()).flatten().map(|x| x.to_bits()).collect()
    };
    assert!(bits(&a) == bits(&b), "ablated letter logits differ between fused and one pass per set");
}
