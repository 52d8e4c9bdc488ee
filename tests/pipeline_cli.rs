//! The pipeline commands through the real binary: collect survives SIGKILL and resumes to the
//! same bits, shards merge into exactly the single-run statistics, identify → ablate → report
//! write what they promise, `pipeline` finds planted neurons, and bad input gets a clear error.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{culturelens, fails, json, ok, s, Outcome};
use serde_json::Value;

/// A small selection of the bundled demo: 6 rows per culture, 3 rows per chunk (10 chunks), a
/// checkpoint after every chunk.
const SMALL: [&str; 6] = ["--limit", "6", "--checkpoint-every", "3", "--min-checkpoint-seconds", "0"];

fn collect(out: &Path, extra: &[&str]) -> Outcome {
    let mut args = vec!["collect", "--out", s(out)];
    args.extend_from_slice(&SMALL);
    args.extend_from_slice(extra);
    ok(&args)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn collect_resumes_after_sigkill_and_shards_merge_bit_identically() {
    resume_and_merge(&[]);
}

#[test]
fn llava_next_mistral_collect_resumes_and_merges_bit_identically() {
    let model = common::fixture_dir("llava_next-mistral-tiny");
    resume_and_merge(&["--model", s(&model)]);
}

#[test]
fn llava_next_qwen2_collect_resumes_and_merges_bit_identically() {
    let model = common::fixture_dir("llava_next-qwen2-tiny");
    resume_and_merge(&["--model", s(&model)]);
}

/// SIGKILL after the first checkpoints, then the same command; three shards merged in any
/// order; both must equal one uninterrupted run to the byte. `model` selects the model.
fn resume_and_merge(model: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let single = tmp.path().join("single");
    collect(&single, model);
    let want = read(&single.join("stats.safetensors"));
    let meta = json(&single.join("stats.json"));
    assert_eq!(meta["complete"], true);
    assert_eq!(meta["groups"].as_array().unwrap().len(), 5);
    assert_eq!(meta["examples"], 30);

    // Killed after its first checkpoints, restarted with the same command.
    let killed = tmp.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_culturelens"))
        .args(["collect", "--out", s(&killed)])
        .args(SMALL)
        .args(model)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = killed.join("stats.partial.safetensors");
    let start = Instant::now();
    while !partial.exists() && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(partial.exists(), "no checkpoint was written before the kill");
    assert!(!killed.join("stats.safetensors").exists(), "the run finished before it could be killed");
    let o = collect(&killed, model);
    assert!(o.stderr.contains("resuming from"), "{}", o.stderr);
    assert!(read(&killed.join("stats.safetensors")) == want, "resumed statistics differ from the uninterrupted run");
    assert!(!partial.exists());

    // Same command again: already complete, nothing recomputed.
    assert!(collect(&killed, model).stderr.contains("already complete"));

    // Three shards, merged.
    let sharded = tmp.path().join("sharded");
    for i in 0..3 {
        let shard = format!("{i}/3");
        collect(&sharded, &[model, &["--shard", &shard]].concat());
    }
    let shard = |i: usize| sharded.join(format!("stats.shard-{i}-of-3.safetensors"));
    let merged = tmp.path().join("merged");
    fails(&["merge", "--out", s(&merged), s(&shard(0)), s(&shard(1))], &["shard 2/3 is missing"]);
    fails(&["merge", "--out", s(&merged), s(&shard(0)), s(&shard(0)), s(&shard(1))], &["given twice"]);
    ok(&["merge", "--out", s(&merged), s(&shard(2)), s(&shard(0)), s(&shard(1))]);
    assert!(read(&merged.join("stats.safetensors")) == want, "merged shards differ from the single run");
    fails(&["identify", "--stats", s(&shard(0)), "--out", s(&tmp.path().join("n"))], &["shard 0/3", "merge"]);

    // A different run into the same directory is refused, not mixed in.
    let o =
        culturelens(&[&["collect", "--out", s(&single), "--limit", "5", "--checkpoint-every", "3"], model].concat());
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(o.stderr.contains("different run"), "{}", o.stderr);
}

#[test]
fn identify_ablate_report_and_their_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let stats = tmp.path().join("stats");
    collect(&stats, &[]);
    let neurons = tmp.path().join("neurons");
    ok(&["identify", "--stats", s(&stats), "--method", "all", "--k", "5", "--out", s(&neurons)]);
    for m in ["cas", "lape", "lap", "mad", "random"] {
        let sets = json(&neurons.join(format!("neurons_{m}.json")));
        assert_eq!(sets["k"], 5);
        let sets = sets["sets"].as_array().unwrap();
        assert_eq!(sets.len(), 5);
        for set in sets {
            let n = set["neurons"].as_array().unwrap();
            let scored = if m == "random" { 0 } else { n.len() };
            assert!(n.len() <= 5 && scored == set["scores"].as_array().unwrap().len());
            assert!(n.iter().all(|p| p[0].as_u64().unwrap() < 4 && p[1].as_u64().unwrap() < 256));
        }
        assert!(neurons.join(format!("masks_{m}.safetensors")).is_file());
    }
    // The random control: 3 draws, each with the CAS set's count in every layer.
    let (cas_sets, random) = (json(&neurons.join("neurons_cas.json")), json(&neurons.join("neurons_random.json")));
    let per_layer = |set: &Value| -> Vec<usize> {
        let mut v = vec![0; 4];
        for n in set["neurons"].as_array().unwrap() {
            v[n[0].as_u64().unwrap() as usize] += 1;
        }
        v
    };
    let draws: Vec<&Value> =
        std::iter::once(&random["sets"]).chain(random["extra_draws"].as_array().unwrap().iter()).collect();
    assert_eq!(draws.len(), 3);
    for draw in &draws {
        for (d, c) in draw.as_array().unwrap().iter().zip(cas_sets["sets"].as_array().unwrap()) {
            assert_eq!(per_layer(d), per_layer(c), "{}", d["group"]);
        }
    }
    assert_ne!(draws[0], draws[1], "two draws are the same");
    let ablation = tmp.path().join("ablation");
    ok(&["ablate", "--limit", "6", "--neurons", s(&neurons), "--method", "cas,mad,random", "--out", s(&ablation)]);
    let a = json(&ablation.join("ablation.json"));
    let sig = &a["summary"]["significance"];
    assert_eq!((sig["resamples"].as_u64(), sig["random_draws"].as_u64()), (Some(1000), Some(3)));
    assert_eq!(sig["permutations"], 0, "exact enumeration");
    for m in ["cas", "mad"] {
        // 5 cultures, each its set or one of 3 draws: every one of 4^5 assignments enumerated.
        let p = a["summary"]["methods"][m]["p_gap_vs_random"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0 && (p * 1024.0).fract() == 0.0, "{m}: p = {p} is no share of 1024");
        let i = &a["summary"]["methods"][m]["intervals"];
        let gap = a["summary"]["methods"][m]["gap"].as_f64().unwrap();
        let (lo, hi) = (i["gap"][0].as_f64().unwrap(), i["gap"][1].as_f64().unwrap());
        assert!(lo <= gap + 1e-12 && gap <= hi + 1e-12, "{m}: gap {gap} outside its interval [{lo}, {hi}]");
    }
    assert!(a["summary"]["methods"]["random"].get("p_gap_vs_random").is_none());
    // Which band matters: CAS in three bands of the 4 layers.
    let bands: Vec<Vec<u64>> = a["summary"]["bands"]["cas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["layers"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect())
        .collect();
    assert_eq!(bands, vec![vec![0, 1], vec![1, 2], vec![2, 4]]);
    // A layer band cuts every set.
    let band = tmp.path().join("band");
    ok(&[
        "ablate",
        "--limit",
        "6",
        "--neurons",
        s(&neurons),
        "--method",
        "cas",
        "--layers",
        "2..=3",
        "--bands",
        "0",
        "--out",
        s(&band),
    ]);
    let b = json(&band.join("ablation.json"));
    assert_eq!(b["summary"]["layer_band"], serde_json::json!([2, 4]));
    let per_layer = b["summary"]["methods"]["cas"]["neurons_per_layer"].as_array().unwrap();
    assert!(per_layer[..2].iter().all(|n| n == 0), "neurons below the band: {per_layer:?}");
    for (args, needle) in
        [(["--layers", "3..3"], "empty"), (["--layers", "2..9"], "4 layers"), (["--layers", "x"], "expected A..B")]
    {
        let out = tmp.path().join("bad-band");
        let mut a = vec!["ablate", "--limit", "2", "--neurons", s(&neurons), "--method", "cas", "--out", s(&out)];
        a.extend(args);
        fails(&a, &[needle]);
        assert!(!out.exists(), "{args:?}: wrote {}", out.display());
    }
    let report = tmp.path().join("report");
    ok(&["report", "--in", s(&ablation), "--out", s(&report)]);
    let summary = json(&report.join("summary.json"));
    for key in ["model", "dataset", "position_rule", "groups", "base_accuracy", "methods"] {
        assert!(summary.get(key).is_some(), "summary.json lacks {key}");
    }
    let cas = &summary["methods"]["cas"];
    let matrix = cas["matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), 5);
    let base = &summary["base_accuracy"];
    let groups: Vec<&str> = summary["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap()).collect();
    for (c, g) in groups.iter().enumerate() {
        let self_delta = matrix[c][c].as_f64().unwrap() - base[g].as_f64().unwrap();
        assert!((cas["self_delta"][g].as_f64().unwrap() - self_delta).abs() < 1e-12);
    }
    for f in
        ["report.md", "report.html", "methods.csv", "matrix_cas.csv", "figures/heatmap_cas.png", "figures/methods.svg"]
    {
        assert!(report.join(f).is_file(), "report lacks {f}");
    }

    // Mean ablation and steering run and say so.
    for (args, mode) in [(vec!["--mode", "mean"], "mean"), (vec!["--scale", "2"], "scale 2")] {
        let dir = tmp.path().join(mode.replace(' ', "_"));
        let mut a = vec!["ablate", "--limit", "6", "--neurons", s(&neurons), "--method", "mad", "--out", s(&dir)];
        a.extend(args);
        ok(&a);
        let abl = json(&dir.join("ablation.json"));
        assert_eq!(abl["extras"]["mode"], mode);
        assert_eq!(abl["summary"]["methods"]["mad"]["matrix"].as_array().unwrap().len(), 5);
    }

    // Bad input.
    let other_model = tmp.path().join("other");
    fails(&["identify", "--stats", s(&tmp.path().join("nope")), "--out", s(&other_model)], &["nope"]);
    let garbage = tmp.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    fails(&["identify", "--stats", s(&garbage), "--out", s(&other_model)], &["garbage.safetensors"]);
    fails(&["identify", "--stats", s(&stats), "--k", "0", "--out", s(&other_model)], &["--k 0"]);
    fails(&["identify", "--stats", s(&stats), "--method", "pca", "--out", s(&other_model)], &["pca"]);
    // Statistics of another model, and neuron sets identified on another model.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_vl-tiny");
    fails(
        &["ablate", "--model", s(&fixture), "--limit", "2", "--neurons", s(&neurons), "--out", s(&other_model)],
        &["neurons_cas.json", "identified on a different model"],
    );
    let (fx_stats, fx_neurons) = (tmp.path().join("fx-stats"), tmp.path().join("fx-neurons"));
    ok(&["collect", "--model", s(&fixture), "--limit", "2", "--out", s(&fx_stats)]);
    ok(&["identify", "--stats", s(&fx_stats), "--method", "cas", "--k", "3", "--out", s(&fx_neurons)]);
    fails(
        &[
            "ablate",
            "--model",
            s(&fixture),
            "--limit",
            "2",
            "--neurons",
            s(&fx_neurons),
            "--stats",
            s(&stats),
            "--out",
            s(&other_model),
        ],
        &["stats.safetensors", "statistics are for 4 layers x 256 neurons, the model has 3 x 176"],
    );
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    let mut sets = json(&neurons.join("neurons_cas.json"));
    sets["model_fingerprint"] = Value::from("0123");
    std::fs::write(foreign.join("neurons_cas.json"), sets.to_string()).unwrap();
    fails(
        &[
            "ablate",
            "--limit",
            "2",
            "--neurons",
            s(&foreign),
            "--method",
            "cas",
            "--stats",
            s(&stats),
            "--out",
            s(&other_model),
        ],
        &["neurons_cas.json", "different model"],
    );
    // Statistics whose tensors disagree with their metadata.
    let mut bytes = read(&stats.join("stats.safetensors"));
    // The metadata is JSON inside the header's JSON, so its quotes are escaped.
    let field = br#"\"layers\":4"#;
    let at = bytes.windows(field.len()).position(|w| w == field).expect("the metadata has a layers field");
    bytes[at + field.len() - 1] = b'5';
    let lying = tmp.path().join("lying.safetensors");
    std::fs::write(&lying, &bytes).unwrap();
    fails(&["identify", "--stats", s(&lying), "--out", s(&other_model)], &["lying.safetensors", "count_pos"]);
    fails(&["collect", "--limit", "2", "--groups", "Atlantis", "--out", s(&other_model)], &["Atlantis"]);
    fails(&["collect", "--limit", "2", "--shard", "3/3", "--out", s(&other_model)], &["--shard 3/3"]);
}

/// `plant` → `pipeline` on the planted model: the tool checks itself.
#[test]
fn pipeline_finds_planted_neurons() {
    finds_planted_neurons("qwen2_5_vl-tiny");
}

#[test]
fn pipeline_finds_neurons_planted_in_llava_next_mistral() {
    finds_planted_neurons("llava_next-mistral-tiny");
}

#[test]
fn pipeline_finds_neurons_planted_in_llava_next_qwen2() {
    finds_planted_neurons("llava_next-qwen2-tiny");
}

fn finds_planted_neurons(base: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let planted = tmp.path().join("planted");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let base = common::fixture_dir(base);
    let cultures = root.join("assets/plant/cultures.toml");
    ok(&["plant", "--base", s(&base), "--cultures", s(&cultures), "--out", s(&planted)]);
    let model = planted.join("model");
    let quiz = planted.join("quiz.parquet");
    let out = tmp.path().join("out");
    let manifest = json(&model.join("planted_neurons.json"));
    ok(&["pipeline", "--model", s(&model), "--data", s(&quiz), "--out", s(&out), "--methods", "cas,mad", "--k", "4"]);
    let summary = json(&out.join("summary.json"));
    let groups: Vec<String> =
        summary["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_string()).collect();
    for (name, acc) in summary["base_accuracy"].as_object().unwrap() {
        assert!(acc.as_f64().unwrap() >= 0.95, "{name}: base accuracy {acc}");
    }
    let planted_of = |g: &str| -> Vec<Value> {
        let cultures = manifest["cultures"].as_array().unwrap();
        let c = cultures.iter().find(|c| c["name"] == g).unwrap_or_else(|| panic!("{g} not in the manifest"));
        c["neurons"].as_array().unwrap().clone()
    };
    for m in ["cas", "mad"] {
        let sets = json(&out.join("neurons").join(format!("neurons_{m}.json")));
        for set in sets["sets"].as_array().unwrap() {
            let g = set["group"].as_str().unwrap();
            let want = planted_of(g);
            let found = set["neurons"].as_array().unwrap().iter().filter(|n| want.contains(n)).count();
            assert!(found as f64 >= 0.9 * want.len() as f64, "{m} {g}: {found} of {} planted neurons", want.len());
        }
    }
    let cas = &summary["methods"]["cas"];
    let matrix = cas["matrix"].as_array().unwrap();
    for (c, g) in groups.iter().enumerate() {
        for (e, h) in groups.iter().enumerate() {
            let delta = matrix[c][e].as_f64().unwrap() - summary["base_accuracy"][h].as_f64().unwrap();
            if c == e {
                assert!(delta <= -0.5, "ablating {g}'s CAS set moves {g} by only {delta}");
            } else {
                assert!(delta.abs() <= 0.05, "ablating {g}'s CAS set moves {h} by {delta}");
            }
        }
    }
    assert!(out.join("report.html").is_file());

    // Steering the first culture's CAS set: ×2 raises the confidence in its planted letter (the
    // right answer of its every question), ×0 is the zero ablation to the bit (same matrix row).
    let g = &groups[0];
    ok(&[
        "steer",
        "--model",
        s(&model),
        "--data",
        s(&quiz),
        "--neurons",
        s(&out.join("neurons")),
        "--culture",
        g,
        "--scales",
        "1,2,0",
        "--out",
        s(&out),
    ]);
    let steer = json(&out.join(format!("steer_cas_{g}.json")));
    let conf = |scale: usize| steer["confidence"][scale][0].as_f64().unwrap();
    assert!(conf(1) > conf(0), "{g}: confidence {} at ×2, {} at ×1", conf(1), conf(0));
    assert_eq!(steer["values"][2], cas["matrix"][0], "scale 0 differs from the zero ablation");
    assert_eq!(steer["kept"][2], cas["kept"][0], "scale 0 differs from the zero ablation");
    assert_eq!(
        steer["values"][0],
        serde_json::to_value(groups.iter().map(|h| summary["base_accuracy"][h].clone()).collect::<Vec<_>>()).unwrap()
    );
    assert!(
        out.join(format!("steer_cas_{g}.csv")).is_file() && out.join(format!("figures/steer_cas_{g}.svg")).is_file()
    );
}

/// The image budget and the prompt format are part of a run: recorded in stats.json, a
/// different choice into the same folder is refused, and bad ones are named.
#[test]
fn image_budget_and_prompt_format_are_recorded_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("stats");
    let template = tmp.path().join("prompt.txt");
    std::fs::write(&template, "Look at the picture.\n{question}\n{options}\nReply with one letter.").unwrap();
    // The bundled processor's budget is [12544, 50176] pixels; a smaller maximum.
    let small = ["--max-pixels", "25088", "--prompt-format", s(&template)];
    collect(&out, &small);
    let meta = json(&out.join("stats.json"));
    assert_eq!(meta["image_budget"], serde_json::json!([12544, 25088]));
    assert!(meta["prompt_format"].as_str().unwrap().starts_with("Look at the picture."));
    let default = json(&{
        let d = tmp.path().join("default");
        collect(&d, &[]);
        d.join("stats.json")
    });
    assert_eq!(default["prompt_format"], "default");
    assert_eq!(default["image_budget"], serde_json::json!([12544, 50176]), "the processor's own budget");
    // Another budget into the same folder is another run.
    let o = culturelens(&[&["collect", "--out", s(&out)], &SMALL[..], &["--max-pixels", "40000"]].concat());
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(o.stderr.contains("different run"), "{}", o.stderr);
    // Bad choices.
    let llava = common::fixture_dir("llava_next-qwen2-tiny");
    fails(
        &["collect", "--model", s(&llava), "--limit", "2", "--max-pixels", "50000", "--out", s(&tmp.path().join("x"))],
        &["--max-pixels", "image_grid_pinpoints"],
    );
    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, "{question} and {answer}").unwrap();
    fails(&["collect", "--prompt-format", s(&bad), "--out", s(&tmp.path().join("y"))], &["bad.txt", "{answer}"]);
    fails(
        &["collect", "--min-pixels", "9000", "--max-pixels", "4000", "--out", s(&tmp.path().join("z"))],
        &["--min-pixels 9000", "--max-pixels 4000"],
    );
}
