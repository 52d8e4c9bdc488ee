//! Tokenizer and chat template against the HF golden fixtures in tests/fixtures/<case>/
//! (prompt strings and ids produced by transformers; see the fixtures' README).

use std::fs;
use std::path::{Path, PathBuf};

use culturelens::text::{ChatMessage, ContentPart, ContentStyle, TextError, TextProcessor};
use serde_json::Value as Json;

const CASES: [&str; 5] =
    ["qwen2-tiny", "mistral-tiny", "qwen2_5_vl-tiny", "llava_next-mistral-tiny", "llava_next-qwen2-tiny"];
const TEXT_CASES: [&str; 2] = ["qwen2-tiny", "mistral-tiny"];

fn case_dir(case: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(case);
    assert!(dir.join("case.json").is_file(), "fixture missing: {}", dir.display());
    dir
}

fn read_json(path: &Path) -> Json {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn case_json(case: &str) -> Json {
    read_json(&case_dir(case).join("case.json"))
}

fn processor(case: &str) -> TextProcessor {
    TextProcessor::load(&case_dir(case)).unwrap_or_else(|e| panic!("{case}: {e}"))
}

fn ids(v: &Json) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// case.json's `conversation` (HF message dicts) as ChatMessages.
fn conversation(case: &Json) -> Vec<ChatMessage> {
    let msgs = case["conversation"].as_array().expect("conversation list");
    msgs.iter()
        .map(|m| {
            let role = m["role"].as_str().expect("role");
            let content = match &m["content"] {
                Json::String(s) => vec![ContentPart::Text(s.clone())],
                Json::Array(parts) => parts
                    .iter()
                    .map(|p| match p["type"].as_str() {
                        Some("image") => ContentPart::Image,
                        Some("text") => ContentPart::Text(p["text"].as_str().expect("text").to_string()),
                        other => panic!("unexpected content part type {other:?}"),
                    })
                    .collect(),
                other => panic!("unexpected content {other}"),
            };
            ChatMessage { role: role.to_string(), content }
        })
        .collect()
}

fn golden_input_ids(case: &str) -> Vec<i64> {
    let path = case_dir(case).join("golden.safetensors");
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("golden.safetensors");
    let t = st.tensor("input_ids").expect("input_ids");
    assert_eq!(t.dtype(), safetensors::Dtype::I64);
    t.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect()
}

#[test]
fn render_matches_hf_prompt_for_all_cases() {
    for case in CASES {
        let c = case_json(case);
        let rendered = processor(case).render_chat(&conversation(&c), true).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(rendered, c["prompt"].as_str().expect("prompt"), "{case}");
    }
}

#[test]
fn encode_prompt_matches_hf_text_ids_for_all_cases() {
    for case in CASES {
        let c = case_json(case);
        let got = processor(case).encode_prompt(c["prompt"].as_str().expect("prompt")).expect("encode");
        assert_eq!(got, ids(&c["prompt_text_ids"]), "{case}");
    }
}

#[test]
fn render_then_encode_matches_golden_input_ids_for_text_cases() {
    for case in TEXT_CASES {
        let c = case_json(case);
        let p = processor(case);
        let ids = p.encode_prompt(&p.render_chat(&conversation(&c), true).expect("render")).expect("encode");
        let golden: Vec<i64> = golden_input_ids(case);
        assert_eq!(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), golden, "{case}");
    }
}

/// The vision goldens differ from the text ids only by the image-token expansion.
#[test]
fn vision_golden_ids_are_text_ids_with_expanded_image_token() {
    for case in ["qwen2_5_vl-tiny", "llava_next-mistral-tiny", "llava_next-qwen2-tiny"] {
        let c = case_json(case);
        let image = c["image_token_id"].as_i64().expect("image_token_id");
        let golden = golden_input_ids(case);
        let mut collapsed: Vec<i64> = Vec::new();
        for &id in &golden {
            if !(id == image && collapsed.last() == Some(&image)) {
                collapsed.push(id);
            }
        }
        let text: Vec<i64> = ids(&c["prompt_text_ids"]).into_iter().map(i64::from).collect();
        assert_eq!(collapsed, text, "{case}");
        let n = golden.iter().filter(|&&id| id == image).count();
        assert_eq!(n as u64, c["num_image_tokens"].as_u64().expect("num_image_tokens"), "{case}");
    }
}

#[test]
fn decode_round_trips() {
    let q = processor("qwen2-tiny");
    let s = "Which planet is known as the Red Planet?";
    assert_eq!(q.decode(&q.encode(s, false).unwrap(), false).unwrap(), s);
    assert_eq!(q.decode(&q.encode("<|im_start|>user\nhi<|im_end|>", false).unwrap(), true).unwrap(), "user\nhi");

    let m = processor("mistral-tiny");
    let s = "¿Cuál es la capital de Irlanda? Dublín";
    let with_bos = m.encode(s, true).unwrap();
    assert_eq!(with_bos[0], 1);
    assert_eq!(m.encode(s, false).unwrap(), with_bos[1..]);
    assert_eq!(m.decode(&with_bos, true).unwrap(), s);
    assert!(m.decode(&with_bos, false).unwrap().starts_with("<s>"));

    let v = processor("qwen2_5_vl-tiny");
    let s = "この画像の主な色は何ですか？";
    assert_eq!(v.decode(&v.encode(s, false).unwrap(), false).unwrap(), s);
}

#[test]
fn special_token_ids() {
    let q = processor("qwen2-tiny");
    assert_eq!(q.token_id("<|endoftext|>"), Some(700));
    assert_eq!(q.token_id("<|im_start|>"), Some(701));
    assert_eq!(q.token_id("<|im_end|>"), Some(702));
    assert_eq!(q.token_id("<|no such token|>"), None);
    let m = processor("mistral-tiny");
    assert_eq!((m.token_id("<unk>"), m.token_id("<s>"), m.token_id("</s>")), (Some(0), Some(1), Some(2)));
    for case in ["qwen2_5_vl-tiny", "llava_next-mistral-tiny", "llava_next-qwen2-tiny"] {
        let c = case_json(case);
        let image = if case.starts_with("qwen2_5_vl") { "<|image_pad|>" } else { "<image>" };
        assert_eq!(processor(case).token_id(image).map(u64::from), c["image_token_id"].as_u64(), "{case}");
    }
    let v = processor("qwen2_5_vl-tiny");
    assert!(v.token_id("<|vision_start|>").is_some() && v.token_id("<|vision_end|>").is_some());
}

#[test]
fn eos_ids_follow_generation_config() {
    for case in CASES {
        let gen = read_json(&case_dir(case).join("generation_config.json"));
        let want = match &gen["eos_token_id"] {
            Json::Array(_) => ids(&gen["eos_token_id"]),
            x => vec![x.as_u64().expect("eos id") as u32],
        };
        let p = processor(case);
        assert_eq!(p.eos_token_ids(), want, "{case}");
        assert!(p.has_chat_template(), "{case}");
    }
    assert_eq!(processor("qwen2-tiny").eos_token_ids(), vec![702]);
    assert_eq!(processor("mistral-tiny").eos_token_ids(), vec![2]);
}

// ---- error cases and less common inputs, in scratch directories ----

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("text_golden").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn copy(case: &str, file: &str, to: &Path) {
    fs::copy(case_dir(case).join(file), to.join(file)).expect("copy fixture file");
}

fn load_err(dir: &Path) -> TextError {
    match TextProcessor::load(dir) {
        Ok(_) => panic!("{}: load should fail", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_tokenizer_json_names_the_file() {
    let dir = scratch("missing");
    let e = load_err(&dir);
    let path = dir.join("tokenizer.json");
    assert!(matches!(&e, TextError::Io { path: p, .. } if *p == path), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

#[test]
fn garbled_tokenizer_json_names_the_file() {
    let dir = scratch("garbled");
    fs::write(dir.join("tokenizer.json"), "{\"model\": [garbage").unwrap();
    let e = load_err(&dir);
    assert!(matches!(&e, TextError::Tokenizer { .. }), "{e:?}");
    assert!(e.to_string().contains(&dir.join("tokenizer.json").display().to_string()), "{e}");
}

#[test]
fn garbled_tokenizer_config_names_the_file() {
    let dir = scratch("garbled_config");
    copy("qwen2-tiny", "tokenizer.json", &dir);
    fs::write(dir.join("tokenizer_config.json"), "{\"eos_token\": ").unwrap();
    let e = load_err(&dir);
    assert!(matches!(&e, TextError::Json { .. }), "{e:?}");
    assert!(e.to_string().contains(&dir.join("tokenizer_config.json").display().to_string()), "{e}");
}

#[test]
fn no_template_gives_an_error_naming_the_dir() {
    let dir = scratch("no_template");
    copy("qwen2-tiny", "tokenizer.json", &dir);
    let p = TextProcessor::load(&dir).expect("a tokenizer.json alone is enough to load");
    assert!(!p.has_chat_template());
    assert!(p.eos_token_ids().is_empty());
    let e = p.render_chat(&[ChatMessage::user_text("hi")], true).unwrap_err();
    assert!(matches!(&e, TextError::NoChatTemplate { dir: d } if *d == dir), "{e:?}");
    assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
}

#[test]
fn raise_exception_in_template_is_an_error_naming_the_file() {
    let p = processor("mistral-tiny");
    let e = p.render_chat(&[ChatMessage::text("tool", "x")], true).unwrap_err();
    assert!(matches!(&e, TextError::Template { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("tokenizer_config.json") && msg.contains("Only user and assistant roles are supported!"),
        "{msg}"
    );
}

#[test]
fn template_sources_and_eos_lists() {
    let dir = scratch("sources");
    copy("mistral-tiny", "tokenizer.json", &dir);
    copy("mistral-tiny", "tokenizer_config.json", &dir);
    copy("mistral-tiny", "special_tokens_map.json", &dir);
    // chat_template.json beats tokenizer_config.json, chat_template.jinja beats both
    fs::write(dir.join("chat_template.json"), r#"{"chat_template": "json:{{ messages[0]['content'] }}"}"#).unwrap();
    let p = TextProcessor::load(&dir).unwrap();
    assert_eq!(p.render_chat(&[ChatMessage::user_text("a")], false).unwrap(), "json:a");
    fs::write(dir.join("chat_template.jinja"), "{{ bos_token }}jinja:{{ messages[0]['content'] }}\n").unwrap();
    let p = TextProcessor::load(&dir).unwrap();
    assert_eq!(p.render_chat(&[ChatMessage::user_text("a")], false).unwrap(), "<s>jinja:a");
    // eos_token_id may be a list; the tokenizer's eos_token joins it
    fs::write(dir.join("generation_config.json"), r#"{"eos_token_id": [5, 7, 5]}"#).unwrap();
    assert_eq!(TextProcessor::load(&dir).unwrap().eos_token_ids(), vec![5, 7, 2]);
    fs::write(dir.join("generation_config.json"), r#"{"eos_token_id": "x"}"#).unwrap();
    let e = load_err(&dir);
    assert!(e.to_string().contains("generation_config.json"), "{e}");
}

/// README "MC option ids": render the conversation plus an assistant turn holding the letter
/// (a string for text models, a one-part list for processors); the id at `len(prompt_ids)`.
#[test]
fn mc_option_token_ids_match_hf() {
    for case in CASES {
        let c = case_json(case);
        let p = processor(case);
        let prompt_len = ids(&c["prompt_text_ids"]).len();
        let letters = c["mc"]["letters"].as_array().expect("letters");
        let want = ids(&c["mc"]["option_token_ids"]);
        for (letter, want) in letters.iter().zip(want) {
            let mut msgs = conversation(&c);
            msgs.push(ChatMessage::text("assistant", letter.as_str().expect("letter")));
            let full = p.render_chat(&msgs, false).expect("render");
            let got = p.encode_prompt(&full).expect("encode");
            assert_eq!(got.get(prompt_len), Some(&want), "{case} {letter}: {full:?}");
        }
    }
}

#[test]
fn content_style_follows_the_model_kind() {
    for case in CASES {
        let want = if TEXT_CASES.contains(&case) { ContentStyle::StringIfTextOnly } else { ContentStyle::Parts };
        assert_eq!(processor(case).content_style(), want, "{case}");
    }
    // LLaVA's template indexes content[0]['text'], so a lone text part must stay a list there
    let p = processor("llava_next-mistral-tiny");
    let msgs = [ChatMessage::user_text("Hi"), ChatMessage::text("assistant", "A")];
    assert_eq!(p.render_chat(&msgs, false).unwrap(), "[INST] Hi [/INST] A</s> ");
    // as in Jinja2, `'A'['text'] + ...` is an error
    assert!(p.render_chat_with(&msgs, false, ContentStyle::StringIfTextOnly).is_err());
}

#[test]
fn single_text_part_is_a_string_for_text_models() {
    let p = processor("qwen2-tiny");
    let a = p.render_chat(&[ChatMessage::user_text("hi")], true).unwrap();
    assert!(a.ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"), "{a:?}");
    let no_gen = p.render_chat(&[ChatMessage::user_text("hi")], false).unwrap();
    assert_eq!(format!("{no_gen}<|im_start|>assistant\n"), a);
    // Qwen2's text template concatenates content, which a list cannot do
    assert!(p.render_chat_with(&[ChatMessage::user_text("hi")], true, ContentStyle::Parts).is_err());
}
