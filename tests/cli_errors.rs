//! Bad input through the real binary: a clear message naming the file or tensor, a non-zero
//! exit, and never a panic.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const PROMPT: &str = "Which planet is known as the Red Planet?";

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn culturelens(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_culturelens"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `run` on `dir` and checks for a clean failure whose message contains every `needles`.
fn expect_error(dir: &Path, extra: &[&str], needles: &[&str]) -> String {
    let d = dir.to_str().unwrap();
    let mut args = vec!["run", "--model", d, "--prompt", PROMPT, "--max-new-tokens", "1"];
    args.extend_from_slice(extra);
    let o = culturelens(&args, &[]);
    assert_eq!(o.code, Some(1), "expected exit 1, got {:?}\nstderr: {}", o.code, o.stderr);
    assert!(!o.stderr.contains("panicked"), "panic instead of an error:\n{}", o.stderr);
    for n in needles {
        assert!(o.stderr.contains(n), "error should mention {n:?}; got:\n{}", o.stderr);
    }
    o.stderr
}

/// A scratch copy of the qwen2-tiny checkpoint (no golden outputs) to break.
fn scratch_model() -> (tempfile::TempDir, PathBuf) {
    let src = common::fixture_dir("qwen2-tiny");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qwen2-tiny");
    std::fs::create_dir(&dir).unwrap();
    for f in [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    (tmp, dir)
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn missing_config() {
    let (_t, dir) = scratch_model();
    std::fs::remove_file(dir.join("config.json")).unwrap();
    expect_error(&dir, &[], &["config.json"]);
}

#[test]
fn garbled_config() {
    let (_t, dir) = scratch_model();
    std::fs::write(dir.join("config.json"), "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 6").unwrap();
    expect_error(&dir, &[], &["config.json", "not valid JSON"]);
}

#[test]
fn config_field_of_wrong_type() {
    let (_t, dir) = scratch_model();
    edit_config(&dir, |c| c["num_hidden_layers"] = serde_json::json!("three"));
    expect_error(&dir, &[], &["config.json", "num_hidden_layers"]);
}

#[test]
fn unknown_architecture() {
    let (_t, dir) = scratch_model();
    edit_config(&dir, |c| c["architectures"] = serde_json::json!(["GPTNeoXForCausalLM"]));
    expect_error(&dir, &[], &["GPTNeoXForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"]);
}

#[test]
fn config_disagrees_with_tensor_shape() {
    let (_t, dir) = scratch_model();
    edit_config(&dir, |c| c["intermediate_size"] = serde_json::json!(200));
    expect_error(&dir, &[], &["model.layers.0.mlp.gate_proj.weight", "[176, 64]", "[200, 64]"]);
}

#[test]
fn truncated_safetensors() {
    let (_t, dir) = scratch_model();
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 1000]).unwrap();
    expect_error(&dir, &[], &["model.safetensors", "truncated"]);
}

#[test]
fn header_lies_about_offsets() {
    let (_t, dir) = scratch_model();
    common::edit_header(&dir, |h| {
        let t = h.get_mut("model.norm.weight").unwrap();
        let end = t["data_offsets"][1].as_u64().unwrap();
        t["data_offsets"][1] = serde_json::json!(end + 64);
    });
    expect_error(&dir, &[], &["model.safetensors"]);
}

#[test]
fn tensor_dtype_not_supported() {
    let (_t, dir) = scratch_model();
    // Same byte size, integer type: the header says I16 where bf16 was.
    common::edit_header(&dir, |h| h["model.norm.weight"]["dtype"] = serde_json::json!("I16"));
    expect_error(&dir, &[], &["model.norm.weight", "I16"]);
}

#[test]
fn missing_tensor() {
    let (_t, dir) = scratch_model();
    // Renaming keeps the file valid; the loader must then miss the original name.
    common::edit_header(&dir, |h| {
        let v = h.as_object_mut().unwrap().remove("model.layers.2.self_attn.k_proj.bias").unwrap();
        h["renamed.bias"] = v;
    });
    expect_error(&dir, &[], &["model.layers.2.self_attn.k_proj.bias", "missing"]);
}

#[test]
fn missing_tokenizer() {
    let (_t, dir) = scratch_model();
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    expect_error(&dir, &[], &["tokenizer.json"]);
}

#[test]
fn missing_chat_template_unless_raw() {
    let (_t, dir) = scratch_model();
    let p = dir.join("tokenizer_config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("chat_template");
    std::fs::write(&p, v.to_string()).unwrap();
    expect_error(&dir, &[], &["no chat template", "--raw"]);
    let o = culturelens(
        &["run", "--model", dir.to_str().unwrap(), "--prompt", PROMPT, "--raw", "--max-new-tokens", "2"],
        &[],
    );
    assert_eq!(o.code, Some(0), "--raw needs no template: {}", o.stderr);
}

#[test]
fn model_path_that_does_not_exist() {
    let o = culturelens(&["run", "--model", "/no/such/model", "--prompt", PROMPT], &[]);
    assert_eq!(o.code, Some(1));
    assert!(o.stderr.contains("/no/such/model"), "{}", o.stderr);
    let cache = tempfile::tempdir().unwrap();
    let o = culturelens(
        &["run", "--model", "Qwen/Qwen2.5-VL-7B-Instruct", "--prompt", PROMPT],
        &[("HF_HUB_CACHE", cache.path().to_str().unwrap())],
    );
    assert_eq!(o.code, Some(1));
    assert!(o.stderr.contains("not in the local Hugging Face cache"), "{}", o.stderr);
}

#[test]
fn no_adapter_says_what_to_install() {
    let o = culturelens(
        &["run", "--model", "assets/models/qwen2-tiny", "--prompt", PROMPT],
        &[
            ("VK_ICD_FILENAMES", "/nonexistent/icd.json"),
            ("VK_DRIVER_FILES", "/nonexistent/icd.json"),
            ("WGPU_BACKEND", "vulkan"),
        ],
    );
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(o.stderr.contains("no GPU adapter") && o.stderr.contains("mesa-vulkan-drivers"), "{}", o.stderr);
    assert!(!o.stderr.contains("panicked"));
}

#[test]
fn unknown_device_selector() {
    let o = culturelens(&["run", "--device", "no-such-gpu", "--prompt", PROMPT], &[]);
    assert_eq!(o.code, Some(1));
    assert!(o.stderr.contains("no-such-gpu") && o.stderr.contains("culturelens devices"), "{}", o.stderr);
}

#[test]
fn sharded_checkpoint_in_hf_cache_layout_runs_like_the_single_file() {
    // Shard the checkpoint in two and lay it out as the HF hub cache does; `--model org/name`
    // must find it there and give the same logits as the directory it came from.
    let (_t, dir) = scratch_model();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    let cache = tempfile::tempdir().unwrap();
    let snap = cache.path().join("models--culture--tiny/snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(cache.path().join("models--culture--tiny/refs")).unwrap();
    std::fs::write(cache.path().join("models--culture--tiny/refs/main"), "0123abcd").unwrap();
    let mut weight_map = serde_json::Map::new();
    for (i, part) in names.chunks(names.len() / 2 + 1).enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i + 1);
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> =
            part.iter().map(|n| (n.clone(), st.tensor(n).unwrap())).collect();
        safetensors::serialize_to_file(views, None, &snap.join(&file)).unwrap();
        for n in part {
            weight_map.insert(n.clone(), serde_json::json!(file));
        }
    }
    std::fs::write(
        snap.join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": weight_map}).to_string(),
    )
    .unwrap();
    for f in
        ["config.json", "generation_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    {
        std::fs::copy(dir.join(f), snap.join(f)).unwrap();
    }
    let dump_a = cache.path().join("a.safetensors");
    let dump_b = cache.path().join("b.safetensors");
    let env = [("HF_HUB_CACHE", cache.path().to_str().unwrap())];
    let a = culturelens(
        &[
            "run",
            "--model",
            "culture/tiny",
            "--prompt",
            PROMPT,
            "--max-new-tokens",
            "3",
            "--dump",
            dump_a.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(a.code, Some(0), "{}", a.stderr);
    let b = culturelens(
        &[
            "run",
            "--model",
            dir.to_str().unwrap(),
            "--prompt",
            PROMPT,
            "--max-new-tokens",
            "3",
            "--dump",
            dump_b.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(b.code, Some(0), "{}", b.stderr);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(std::fs::read(dump_a).unwrap(), std::fs::read(dump_b).unwrap());
}

#[test]
fn dump_holds_ids_and_logits_matching_hf() {
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump.safetensors");
    let golden = common::Golden::open("qwen2-tiny");
    let case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden.dir.join("case.json")).unwrap()).unwrap();
    let prompt = case["conversation"][0]["content"].as_str().unwrap();
    let o = culturelens(
        &[
            "run",
            "--model",
            golden.dir.to_str().unwrap(),
            "--prompt",
            prompt,
            "--max-new-tokens",
            "2",
            "--dump",
            dump.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let bytes = std::fs::read(&dump).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ids: Vec<i64> =
        st.tensor("input_ids").unwrap().data().chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(ids, golden.i64("input_ids"), "ids after the chat template");
    let logits = st.tensor("logits").unwrap();
    assert_eq!(logits.shape(), &[ids.len(), 704]);
    let lg: Vec<f32> = logits.data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let e = common::nmse(&lg, &golden.f32("logits"));
    assert!(e <= 1e-8, "dumped logits NMSE {e:e}");
}
