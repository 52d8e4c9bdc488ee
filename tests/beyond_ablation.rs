//! What comes after "ablate and compare", through the binary and the library on the bundled
//! demo: interventions while generating (`run --neurons`), the steering sweep, neuron
//! inspection, selection and evaluation on separate rows (`--eval-split`, cross-fitting), example
//! weighting, and the errors of each.
mod common;

use std::path::Path;

use common::{culturelens, fails, gpu, json, mini_cvqa_test, ok, s};
use culturelens::neurons::stats_file::StatsFile;
use culturelens::pipeline::collect::{collect_loaded, CollectOptions, Weighting};
use culturelens::pipeline::inspect::example_means;
use culturelens::pipeline::model::{options_per_row, CultureModel};

/// Statistics and neuron sets (CAS, MAD and the random control, k = 8) of 4 rows per culture.
fn stats_and_sets(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (stats, neurons) = (dir.join("stats"), dir.join("neurons"));
    ok(&["collect", "--limit", "4", "--out", s(&stats)]);
    ok(&["identify", "--stats", s(&stats), "--method", "cas,mad,random", "--k", "8", "--out", s(&neurons)]);
    (stats, neurons)
}

#[test]
fn run_applies_a_culture_set_while_generating_and_compares() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, neurons) = stats_and_sets(tmp.path());
    let run = |extra: &[&str], dump: &Path| {
        let mut a = vec!["run", "--model", "assets/models/culture-tiny-qwen2_5_vl", "--prompt", "Which place is it?"];
        a.extend(["--max-new-tokens", "3", "--dump", s(dump)]);
        a.extend(extra);
        ok(&a)
    };
    let set = ["--neurons", s(&neurons), "--culture", "Japan"];
    let (plain, zero, scaled0, steered) =
        (tmp.path().join("plain"), tmp.path().join("zero"), tmp.path().join("scale0"), tmp.path().join("x8"));
    run(&[], &plain);
    run(&[&set[..], &["--mode", "zero"]].concat(), &zero);
    run(&[&set[..], &["--scale", "0"]].concat(), &scaled0);
    let o = run(&[&set[..], &["--scale", "8", "--compare"]].concat(), &steered);
    let read = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(read(&zero), read(&scaled0), "--scale 0 is the zero ablation to the bit");
    assert_ne!(read(&zero), read(&plain), "ablating Japan's set changed no logit");
    assert_ne!(read(&steered), read(&plain), "scaling Japan's set by 8 changed no logit");
    // --compare answers twice; stdout is not captured by `ok`, so check through the library.
    assert!(o.stderr.contains("generated"), "{}", o.stderr);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_culturelens"))
        .args(["run", "--model", "assets/models/culture-tiny-qwen2_5_vl", "--prompt", "Which place is it?"])
        .args(["--max-new-tokens", "2", "--compare", "--scale", "8"])
        .args(set)
        .current_dir(common::root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("unmodified: ") && stdout.contains("Japan cas scale 8: "), "{stdout}");

    // Bad input: an unknown culture, an unknown method, sets of another model.
    let base = ["run", "--model", "assets/models/culture-tiny-qwen2_5_vl", "--prompt", "hi", "--neurons", s(&neurons)];
    fails(&[&base[..], &["--culture", "Atlantis"]].concat(), &["Atlantis", "Japan, Kenya"]);
    fails(&[&base[..], &["--culture", "Japan", "--method", "pca"]].concat(), &["pca"]);
    fails(&[&base[..], &["--culture", "Japan", "--method", "lap"]].concat(), &["neurons_lap.json"]);
    fails(&[&base[..], &["--culture", "Japan", "--scale", "-1"]].concat(), &["--scale -1", "≥ 0"]);
    fails(&[&base[..], &["--culture", "Japan", "--scale", "inf"]].concat(), &["--scale inf"]);
    let fixture = common::fixture_dir("qwen2_5_vl-tiny");
    fails(
        &["run", "--model", s(&fixture), "--prompt", "hi", "--neurons", s(&neurons), "--culture", "Japan"],
        &["neurons_cas.json", "different model"],
    );
}

#[test]
fn steer_sweeps_and_refuses_bad_sweeps() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, neurons) = stats_and_sets(tmp.path());
    let out = tmp.path().join("steer");
    ok(&["steer", "--limit", "4", "--neurons", s(&neurons), "--culture", "Kenya", "--out", s(&out)]);
    let r = json(&out.join("steer_cas_Kenya.json"));
    let scales: Vec<f64> = common::f64s(&r["scales"]);
    assert_eq!(scales, vec![0.0, 0.5, 1.0, 2.0, 4.0], "the default sweep");
    assert_eq!(r["values"].as_array().unwrap().len(), 5);
    assert_eq!(r["values"][2], r["base"], "scale 1 is the model itself");
    let csv = std::fs::read_to_string(out.join("steer_cas_Kenya.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 5 * 5, "{csv}");
    for f in ["figures/steer_cas_Kenya.png", "figures/steer_cas_Kenya.svg"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // The report picks the sweep up.
    ok(&["ablate", "--limit", "4", "--neurons", s(&neurons), "--method", "cas", "--bands", "0", "--out", s(&out)]);
    ok(&["report", "--in", s(&out), "--out", s(&out)]);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("the Kenya set ("), "no steering section in report.html");

    for (args, needle) in [
        (vec!["--culture", "Kenya", "--scales", "1,-2"], "-2"),
        (vec!["--culture", "Kenya", "--scales", "NaN"], "NaN"),
        (vec!["--culture", "Kenya", "--scales", "inf"], "inf"),
        (vec!["--culture", "Atlantis"], "Atlantis"),
        (vec!["--culture", "Kenya", "--method", "pca"], "pca"),
    ] {
        let bad = tmp.path().join("bad");
        let mut a = vec!["steer", "--limit", "4", "--neurons", s(&neurons), "--out", s(&bad)];
        a.extend(args.iter().copied());
        fails(&a, &[needle]);
        assert!(!bad.exists(), "{args:?} wrote {}", bad.display());
    }
    let fixture = common::fixture_dir("qwen2_5_vl-tiny");
    let bad = tmp.path().join("bad");
    fails(
        &[
            "steer",
            "--model",
            s(&fixture),
            "--limit",
            "2",
            "--neurons",
            s(&neurons),
            "--culture",
            "Kenya",
            "--out",
            s(&bad),
        ],
        &["neurons_cas.json", "different model"],
    );
    assert!(!bad.exists());
}

#[test]
fn inspect_profiles_neurons_and_their_top_examples() {
    let tmp = tempfile::tempdir().unwrap();
    let (stats, neurons) = stats_and_sets(tmp.path());
    let out = tmp.path().join("inspect");
    ok(&["inspect", "--limit", "4", "--neurons", s(&neurons), "--top", "3", "--out", s(&out)]);
    let r = json(&out.join("inspect.json"));
    assert!(r["methods"].get("random").is_none(), "the control is not profiled");
    let groups = r["groups"].as_array().unwrap();
    let st = StatsFile::load(&stats.join("stats.safetensors")).unwrap().acc.group_stats();
    for m in ["cas", "mad"] {
        for set in r["methods"][m].as_array().unwrap() {
            for n in set["neurons"].as_array().unwrap() {
                let j = n["layer"].as_u64().unwrap() as usize * st.width + n["index"].as_u64().unwrap() as usize;
                for (g, mu) in n["mean"].as_array().unwrap().iter().enumerate() {
                    let (got, want) = (mu.as_f64().unwrap(), st.mean(g)[j]);
                    assert!((got - want).abs() <= 1e-12 * want.abs().max(1e-9), "{m}: μ of neuron {j}, {}", groups[g]);
                }
                let top: Vec<f64> =
                    n["top"].as_array().unwrap().iter().map(|t| t["activation"].as_f64().unwrap()).collect();
                assert_eq!(top.len(), 3);
                assert!(top.windows(2).all(|w| w[0] >= w[1]), "top examples out of order: {top:?}");
            }
        }
    }
    // Each method's set overlaps itself fully; CAS and MAD for a culture are compared.
    let japan = &r["overlap_between_methods"]["Japan"];
    assert_eq!(japan[0][0], 1.0);
    assert_eq!(r["overlap_methods"], serde_json::json!(["cas", "mad", "random"]));
    let html = std::fs::read_to_string(out.join("inspect.html")).unwrap();
    assert!(html.contains("data:image/png;base64,"), "no thumbnails");
    assert!(out.join("inspect_neurons.csv").is_file() && out.join("overlap.csv").is_file());
}

/// Per-example activations (inspect's pass) and both weightings of the statistics agree: the
/// token-weighted μ is the position-weighted mean of the examples' means, the example-weighted μ
/// their plain mean.
#[test]
fn example_weighting_and_per_example_means_agree_with_the_statistics() {
    let gpu = gpu();
    let tmp = tempfile::tempdir().unwrap();
    let data = mini_cvqa_test(Some(3));
    let sel = data.load().unwrap();
    let model = CultureModel::load(
        &gpu,
        s(&common::root().join("assets/models/culture-tiny-qwen2_5_vl")),
        options_per_row(&sel.grouped.examples),
    )
    .unwrap();
    let collect = |weighting, dir: &str| {
        let o = CollectOptions {
            model: "demo".into(),
            data: data.clone(),
            rule: culturelens::eval::mc::PositionRule::All,
            out: tmp.path().join(dir),
            chunk_examples: 4,
            min_checkpoint_seconds: 0.0,
            max_batch_tokens: 200,
            shard: (0, 1),
            weighting,
            progress: false,
        };
        StatsFile::load(&collect_loaded(&gpu, &model, &sel, &o).unwrap()).unwrap()
    };
    let (token, example) = (collect(Weighting::Token, "token"), collect(Weighting::Example, "example"));
    assert_eq!(example.meta.weighting, "example");
    assert_eq!(example.acc.positions, vec![3; 5], "example weighting counts questions");
    assert_eq!(token.option_logits, example.option_logits, "the answers do not depend on the weighting");
    let prepared = model.prepare(&sel.grouped.examples).unwrap();
    let neurons: Vec<usize> = (0..model.layers() * model.width()).step_by(37).collect();
    let means =
        example_means(&model, &prepared, &neurons, culturelens::eval::mc::PositionRule::All, 200, |_, _| {}).unwrap();
    let (ts, es) = (token.acc.group_stats(), example.acc.group_stats());
    for g in 0..5 {
        let rows: Vec<usize> = (0..sel.grouped.examples.len()).filter(|&r| sel.grouped.examples[r].0 == g).collect();
        let len = |r: usize| prepared[r].ids.len() as f64;
        for (c, &j) in neurons.iter().enumerate() {
            let by_example = rows.iter().map(|&r| means[r][c]).sum::<f64>() / rows.len() as f64;
            let by_token =
                rows.iter().map(|&r| means[r][c] * len(r)).sum::<f64>() / rows.iter().map(|&r| len(r)).sum::<f64>();
            let tol = |x: f64| 1e-5 * (1.0 + x.abs());
            assert!(
                (es.mean(g)[j] - by_example).abs() <= tol(by_example),
                "example μ {g}/{j}: {} vs {by_example}",
                es.mean(g)[j]
            );
            assert!(
                (ts.mean(g)[j] - by_token).abs() <= tol(by_token),
                "token μ {g}/{j}: {} vs {by_token}",
                ts.mean(g)[j]
            );
        }
    }
    // identify reads example-weighted statistics.
    let out = tmp.path().join("neurons");
    ok(&["identify", "--stats", s(&tmp.path().join("example")), "--method", "cas,lap", "--k", "4", "--out", s(&out)]);
}

#[test]
fn eval_split_identifies_on_one_part_and_cross_fits() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let common = ["--limit", "4", "--methods", "cas,random", "--k", "8", "--bands", "0", "--bootstrap", "200"];
    ok(&[&["pipeline", "--out", s(&out), "--eval-split", "0.5", "--cross-fit"][..], &common[..]].concat());
    let summary = json(&out.join("summary.json"));
    let e = &summary["evaluation"];
    assert_eq!((e["identify_fraction"].as_f64(), e["cross_fit"].as_bool()), (Some(0.5), Some(true)));
    assert_eq!(e["identify_rows"]["Japan"], 2);
    assert_eq!(e["evaluate_rows"]["Japan"], 2);
    // Each fold identified on its own half: 10 rows each, the two halves of the 20.
    for fold in ["fold-1", "fold-2"] {
        let meta = json(&out.join(fold).join("stats/stats.json"));
        assert_eq!(meta["examples"], 10, "{fold}");
        let a = json(&out.join(fold).join("ablation.json"));
        assert_eq!(a["extras"]["examples_per_group"], serde_json::json!([2, 2, 2, 2, 2]), "{fold}");
    }
    let (f1, f2) = (json(&out.join("fold-1/stats/stats.json")), json(&out.join("fold-2/stats/stats.json")));
    assert_ne!(f1["dataset_fingerprint"], f2["dataset_fingerprint"]);
    // The pooled matrix covers every row once.
    let a = json(&out.join("ablation.json"));
    assert_eq!(a["extras"]["examples_per_group"], serde_json::json!([4, 4, 4, 4, 4]));
    assert!(summary["methods"]["cas"]["p_gap_vs_random"].as_f64().is_some());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("evaluation split") && md.contains("cross-fit"), "the report names the split:\n{md}");

    // Bad splits fail before any work.
    for (f, needle) in [("1.5", "between 0 and 1"), ("0", "between 0 and 1")] {
        let bad = tmp.path().join("bad");
        fails(&[&["pipeline", "--out", s(&bad), "--eval-split", f][..], &common[..]].concat(), &[needle]);
        assert!(!bad.exists());
    }
    let bad = tmp.path().join("bad");
    fails(&["collect", "--limit", "1", "--eval-split", "0.5", "--out", s(&bad)], &["has 1 rows"]);
    assert!(!bad.exists());
    let o = culturelens(&["pipeline", "--out", s(&bad), "--cross-fit"]);
    assert!(o.code.is_some_and(|c| c != 0) && o.stderr.contains("--eval-split"), "{}", o.stderr);
    assert!(!bad.exists());
}
