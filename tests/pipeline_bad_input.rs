//! Bad input to the pipeline commands on LLaVA-NeXT checkpoints, through the binary: broken
//! checkpoints, templates and rows, and statistics or neuron sets of another architecture. Each
//! gets an error naming the file, key or row, exit 1, no panic, before any work, and whatever
//! the output folder already held is left as it was.
mod common;

use std::path::{Path, PathBuf};

use common::{ok, root, s};

/// Runs `args` with `--out OUT` where OUT already holds an ablation.json; checks for a clean
/// failure that mentions every needle and leaves that file untouched.
fn fails(args: &[&str], out: &Path, needles: &[&str]) {
    std::fs::create_dir_all(out).unwrap();
    let kept = out.join("ablation.json");
    std::fs::write(&kept, "{\"earlier\": \"results\"}\n").unwrap();
    let mut all = args.to_vec();
    all.extend(["--out", s(out)]);
    common::fails(&all, needles);
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "{\"earlier\": \"results\"}\n", "{args:?} overwrote output");
    let left: Vec<_> = std::fs::read_dir(out).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 1, "{args:?} wrote into the output folder: {left:?}");
}

/// A copy of the LLaVA-v1.6-Mistral fixture (model files only) to break.
fn scratch(tmp: &Path, name: &str) -> PathBuf {
    let src = root().join("tests/fixtures/llava_next-mistral-tiny");
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        let f = e.file_name();
        if !["golden.safetensors", "case.json", "image.png"].contains(&f.to_str().unwrap()) {
            std::fs::copy(e.path(), dir.join(&f)).unwrap();
        }
    }
    dir
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn broken_llava_next_checkpoints_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let collect = |model: &Path, out: &str, needles: &[&str]| {
        fails(&["collect", "--model", s(model), "--limit", "2"], &t.join(out), needles);
    };

    let m = scratch(t, "no-pinpoints");
    edit_json(&m.join("config.json"), |c| {
        c.as_object_mut().unwrap().remove("image_grid_pinpoints");
    });
    collect(&m, "o1", &["config.json", "image_grid_pinpoints"]);

    let m = scratch(t, "no-newline");
    common::edit_header(&m, |h| {
        let t = h.as_object_mut().unwrap().remove("image_newline").expect("the fixture has image_newline");
        h["image_newline_renamed"] = t;
    });
    collect(&m, "o2", &["image_newline", "no-newline"]);

    let m = scratch(t, "no-processor");
    std::fs::remove_file(m.join("preprocessor_config.json")).unwrap();
    std::fs::remove_file(m.join("processor_config.json")).unwrap();
    collect(&m, "o3", &["no-processor", "preprocessor_config.json"]);

    let m = scratch(t, "no-image-slot");
    let text_only = "{% for message in messages %}[INST] {% for c in message['content'] | selectattr('type', \
                     'equalto', 'text') %}{{ c['text'] }}{% endfor %} [/INST]{% endfor %}";
    std::fs::write(m.join("chat_template.json"), serde_json::json!({ "chat_template": text_only }).to_string())
        .unwrap();
    collect(&m, "o4", &["chat_template.json", "0 image placeholders", "<image>"]);

    // The processor cuts a grid the model's config does not pack: HF would fail deep in the
    // forward with "image features and image tokens do not match".
    let m = scratch(t, "pinpoints-disagree");
    edit_json(&m.join("preprocessor_config.json"), |c| c["image_grid_pinpoints"] = serde_json::json!([[56, 56]]));
    collect(&m, "o5", &["row ja_JP_test_pattern_0012", "image_grid_pinpoints", "crops"]);
}

#[test]
fn a_row_whose_text_holds_the_image_placeholder_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("rows.jsonl");
    std::fs::copy(root().join("tests/fixtures/llava_next-mistral-tiny/image.png"), tmp.path().join("a.png")).unwrap();
    let row = |id: &str, country: &str, question: &str| {
        serde_json::json!({"id": id, "language": "en", "country": country, "question": question,
            "options": ["a", "b", "c", "d"], "label": 0, "image": "a.png", "category": "x"})
        .to_string()
    };
    let rows = [row("ok-1", "Japan", "Which dish?"), row("sneaky", "Kenya", "Which <image> dish?")];
    std::fs::write(&data, rows.join("\n") + "\n").unwrap();
    let model = root().join("tests/fixtures/llava_next-mistral-tiny");
    fails(
        &["collect", "--model", s(&model), "--data", s(&data)],
        &tmp.path().join("out"),
        &["row sneaky", "2 image placeholder", "<image>"],
    );
}

#[test]
fn statistics_and_neuron_sets_of_another_architecture_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let llava = root().join("tests/fixtures/llava_next-mistral-tiny");
    // Statistics and CAS sets of the bundled Qwen2.5-VL, and of the LLaVA-NeXT fixture.
    let (qwen_stats, qwen_neurons) = (t.join("qwen/stats"), t.join("qwen/neurons"));
    ok(&["collect", "--limit", "2", "--out", s(&qwen_stats)]);
    ok(&["identify", "--stats", s(&qwen_stats), "--method", "cas", "--k", "3", "--out", s(&qwen_neurons)]);
    let (llava_stats, llava_neurons) = (t.join("llava/stats"), t.join("llava/neurons"));
    ok(&["collect", "--model", s(&llava), "--limit", "2", "--out", s(&llava_stats)]);
    ok(&["identify", "--stats", s(&llava_stats), "--method", "cas", "--k", "3", "--out", s(&llava_neurons)]);

    let ablate = ["ablate", "--model", s(&llava), "--limit", "2", "--method", "cas"];
    fails(
        &[&ablate[..], &["--neurons", s(&qwen_neurons)]].concat(),
        &t.join("o1"),
        &["neurons_cas.json", "Qwen2_5_VLForConditionalGeneration", "LlavaNextForConditionalGeneration"],
    );
    fails(
        &[&ablate[..], &["--neurons", s(&llava_neurons), "--stats", s(&qwen_stats)]].concat(),
        &t.join("o2"),
        &["stats.safetensors", "Qwen2_5_VLForConditionalGeneration", "LlavaNextForConditionalGeneration"],
    );
}
