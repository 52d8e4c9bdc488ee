//! `tokenizer.json` through the `tokenizers` crate, plus the special tokens and EOS ids that
//! transformers reads from the JSON config files beside it.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::TextError;

pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    clean_up_spaces: bool,
}

impl TextTokenizer {
    /// Loads `<dir>/tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Self, TextError> {
        let path = dir.join("tokenizer.json");
        let bytes = std::fs::read(&path).map_err(|source| TextError::Io { path: path.clone(), source })?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| TextError::Tokenizer { path: path.clone(), reason: e.to_string() })?;
        let cfg_path = dir.join("tokenizer_config.json");
        let clean_up_spaces = match read_json(&cfg_path)?.as_ref().and_then(|c| c.get("clean_up_tokenization_spaces")) {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => *b,
            Some(other) => {
                return Err(invalid(&cfg_path, format!("clean_up_tokenization_spaces: expected a bool, got {other}")))
            }
        };
        Ok(Self { inner, path, clean_up_spaces })
    }

    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TextError> {
        let enc = self.inner.encode(text, add_special_tokens).map_err(|e| self.error("encode", e))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TextError> {
        let text = self.inner.decode(ids, skip_special_tokens).map_err(|e| self.error("decode", e))?;
        Ok(if self.clean_up_spaces { clean_up_tokenization(&text) } else { text })
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Number of ids the tokenizer can produce, added tokens included (HF's `len(tokenizer)`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner().id_to_token(id)
    }

    pub fn len(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, what: &str, e: tokenizers::Error) -> TextError {
        TextError::Tokenizer { path: self.path.clone(), reason: format!("{what} failed: {e}") }
    }
}

/// transformers' `clean_up_tokenization`, applied by `decode` when the tokenizer config asks for it.
fn clean_up_tokenization(s: &str) -> String {
    const RULES: [(&str, &str); 10] = [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ];
    RULES.iter().fold(s.to_string(), |acc, (from, to)| acc.replace(from, to))
}

/// The special-token strings a chat template sees as variables (`bos_token`, `eos_token`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<String>,
    pub eos: Option<String>,
    pub unk: Option<String>,
    pub pad: Option<String>,
    pub sep: Option<String>,
    pub cls: Option<String>,
    pub mask: Option<String>,
    pub additional: Vec<String>,
}

impl SpecialTokens {
    /// `tokenizer_config.json` wins and `special_tokens_map.json` fills what it leaves unset,
    /// the precedence of transformers' `from_pretrained`. Both files are optional.
    pub fn load(dir: &Path) -> Result<Self, TextError> {
        let cfg_path = dir.join("tokenizer_config.json");
        let map_path = dir.join("special_tokens_map.json");
        let cfg = read_json(&cfg_path)?;
        let map = read_json(&map_path)?;
        let mut s = Self::default();
        for (key, slot) in s.named_mut() {
            *slot = match token_field(cfg.as_ref(), &cfg_path, key)? {
                Some(t) => Some(t),
                None => token_field(map.as_ref(), &map_path, key)?,
            };
        }
        s.additional = match token_list(cfg.as_ref(), &cfg_path)? {
            Some(list) => list,
            None => token_list(map.as_ref(), &map_path)?.unwrap_or_default(),
        };
        Ok(s)
    }

    /// `(variable name, token)` for every token that is set, like HF's `special_tokens_map`
    /// (unset tokens are not passed, so a template sees them as undefined).
    pub fn named(&self) -> Vec<(&'static str, &str)> {
        let all = [
            ("bos_token", &self.bos),
            ("eos_token", &self.eos),
            ("unk_token", &self.unk),
            ("sep_token", &self.sep),
            ("pad_token", &self.pad),
            ("cls_token", &self.cls),
            ("mask_token", &self.mask),
        ];
        all.into_iter().filter_map(|(k, v)| v.as_deref().map(|t| (k, t))).collect()
    }

    fn named_mut(&mut self) -> [(&'static str, &mut Option<String>); 7] {
        [
            ("bos_token", &mut self.bos),
            ("eos_token", &mut self.eos),
            ("unk_token", &mut self.unk),
            ("sep_token", &mut self.sep),
            ("pad_token", &mut self.pad),
            ("cls_token", &mut self.cls),
            ("mask_token", &mut self.mask),
        ]
    }
}

/// A token is written either as a string or as a serialized `AddedToken` (`{"content": ...}`).
fn token_string(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_string),
        _ => None,
    }
}

fn token_field(json: Option<&Json>, path: &Path, key: &str) -> Result<Option<String>, TextError> {
    match json.and_then(|j| j.get(key)) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => token_string(v)
            .map(Some)
            .ok_or_else(|| invalid(path, format!("{key}: expected a token string or {{\"content\": ...}}, got {v}"))),
    }
}

fn token_list(json: Option<&Json>, path: &Path) -> Result<Option<Vec<String>>, TextError> {
    let key = "additional_special_tokens";
    match json.and_then(|j| j.get(key)) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Array(items)) => items
            .iter()
            .map(|v| token_string(v).ok_or_else(|| invalid(path, format!("{key}: bad entry {v}"))))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(invalid(path, format!("{key}: expected a list, got {v}"))),
    }
}

/// `eos_token_id` (an int, a list of ints, or null) of `generation_config.json`; like
/// `GenerationConfig.from_model_config`, `config.json` (or its `text_config`) stands in when the
/// generation config is absent.
pub fn config_eos_ids(dir: &Path) -> Result<Vec<u32>, TextError> {
    let gen_path = dir.join("generation_config.json");
    if let Some(gen) = read_json(&gen_path)? {
        return eos_field(gen.get("eos_token_id"), &gen_path);
    }
    let cfg_path = dir.join("config.json");
    let Some(cfg) = read_json(&cfg_path)? else {
        return Ok(Vec::new());
    };
    let field = cfg.get("eos_token_id").or_else(|| cfg.get("text_config").and_then(|t| t.get("eos_token_id")));
    eos_field(field, &cfg_path)
}

fn eos_field(v: Option<&Json>, path: &Path) -> Result<Vec<u32>, TextError> {
    let as_id = |x: &Json| {
        x.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| invalid(path, format!("eos_token_id: {x} is not a token id")))
    };
    match v {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => {
            let mut ids: Vec<u32> = Vec::new();
            for id in items.iter().map(as_id) {
                let id = id?;
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Ok(ids)
        }
        Some(x) => Ok(vec![as_id(x)?]),
    }
}

/// Parses a JSON file; `Ok(None)` when the file does not exist.
pub(crate) fn read_json(path: &Path) -> Result<Option<Json>, TextError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TextError::Io { path: path.to_path_buf(), source }),
    };
    serde_json::from_str(&text).map(Some).map_err(|source| TextError::Json { path: path.to_path_buf(), source })
}

pub(crate) fn invalid(path: &Path, reason: String) -> TextError {
    TextError::Invalid { path: path.to_path_buf(), reason }
}
