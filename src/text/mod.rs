//! Text side of a model directory: the tokenizer (`tokenizer.json`) and the chat template,
//! both behaving like Hugging Face transformers so prompts and ids match HF bit for bit.

pub mod chat_template;
mod pyfmt;
pub mod tokenizer;

use std::path::{Path, PathBuf};

pub use chat_template::{ChatMessage, ChatTemplate, ContentPart, ContentStyle};
pub use tokenizer::{SpecialTokens, TextTokenizer};

/// Every error names the file (or directory) it is about.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("{}: tokenizer: {reason}", path.display())]
    Tokenizer { path: PathBuf, reason: String },
    #[error(
        "{}: no chat template (looked for chat_template.jinja, chat_template.json and \
         \"chat_template\" in tokenizer_config.json)",
        dir.display()
    )]
    NoChatTemplate { dir: PathBuf },
    #[error("{}: chat template: {reason}", path.display())]
    Template { path: PathBuf, reason: String },
}

/// Tokenizer + chat template + special tokens of one model directory.
pub struct TextProcessor {
    dir: PathBuf,
    tokenizer: TextTokenizer,
    template: Option<ChatTemplate>,
    special: SpecialTokens,
    eos_ids: Vec<u32>,
    style: ContentStyle,
}

impl TextProcessor {
    /// `tokenizer.json` is required; the chat template and the config files are optional.
    pub fn load(model_dir: &Path) -> Result<Self, TextError> {
        let tokenizer = TextTokenizer::load(model_dir)?;
        let special = SpecialTokens::load(model_dir)?;
        let template = ChatTemplate::load(model_dir)?;
        let mut eos_ids = tokenizer::config_eos_ids(model_dir)?;
        if let Some(id) = special.eos.as_deref().and_then(|t| tokenizer.token_id(t)) {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
        // A (pre)processor config means a multimodal checkpoint driven through an HF processor,
        // whose callers write content as lists of parts.
        let processor = ["preprocessor_config.json", "processor_config.json"];
        let style = if processor.iter().any(|f| model_dir.join(f).is_file()) {
            ContentStyle::Parts
        } else {
            ContentStyle::StringIfTextOnly
        };
        Ok(Self { dir: model_dir.to_path_buf(), tokenizer, template, special, eos_ids, style })
    }

    /// Renders with the content style chosen for this model (see [`Self::content_style`]).
    pub fn render_chat(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String, TextError> {
        self.render_chat_with(messages, add_generation_prompt, self.style)
    }

    pub fn render_chat_with(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        style: ContentStyle,
    ) -> Result<String, TextError> {
        let template = self.template.as_ref().ok_or_else(|| TextError::NoChatTemplate { dir: self.dir.clone() })?;
        template.render(messages, add_generation_prompt, style, &self.special)
    }

    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TextError> {
        self.tokenizer.encode(text, add_special_tokens)
    }

    /// Ids for a rendered chat prompt, as HF's `tokenizer(prompt)` / `processor(text=prompt)`
    /// produce them: those calls default to `add_special_tokens=True`, so the tokenizer's
    /// post-processor runs (Mistral/Llama prepend `<s>`, which their templates do not emit;
    /// Qwen's post-processor adds nothing). Like HF, nothing is done about a template that
    /// already emits the BOS itself.
    pub fn encode_prompt(&self, rendered: &str) -> Result<Vec<u32>, TextError> {
        self.tokenizer.encode(rendered, true)
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TextError> {
        self.tokenizer.decode(ids, skip_special_tokens)
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_id(token)
    }

    /// Ids that end generation: `generation_config.json`'s `eos_token_id` (int or list;
    /// `config.json`'s when there is no generation config), plus the tokenizer's `eos_token`.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos_ids.clone()
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// `Parts` when the directory has a `preprocessor_config.json` or `processor_config.json`
    /// (multimodal, processor-style messages), else `StringIfTextOnly`.
    pub fn content_style(&self) -> ContentStyle {
        self.style
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    pub fn model_dir(&self) -> &Path {
        &self.dir
    }
}

/// What an HF processor does before tokenizing: each image placeholder token in the rendered
/// prompt becomes `counts[i]` copies of itself, one per image embedding. The number of
/// placeholders must equal the number of images.
pub fn expand_image_tokens(rendered: &str, placeholder: &str, counts: &[usize]) -> Result<String, String> {
    let found = rendered.matches(placeholder).count();
    if found != counts.len() {
        return Err(format!(
            "the prompt has {found} image placeholder(s) ({placeholder}) but {} image(s) were given",
            counts.len()
        ));
    }
    let mut out = String::with_capacity(rendered.len() + counts.iter().sum::<usize>() * placeholder.len());
    let mut parts = rendered.split(placeholder);
    out.push_str(parts.next().unwrap_or_default());
    for (part, &n) in parts.zip(counts) {
        out.push_str(&placeholder.repeat(n));
        out.push_str(part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_expand_per_image_and_counts_must_agree() {
        assert_eq!(super::expand_image_tokens("a<i>b<i>c", "<i>", &[2, 1]).unwrap(), "a<i><i>b<i>c");
        assert!(super::expand_image_tokens("a<i>b", "<i>", &[]).unwrap_err().contains("1 image placeholder"));
        assert!(super::expand_image_tokens("ab", "<i>", &[3]).is_err());
    }
}
