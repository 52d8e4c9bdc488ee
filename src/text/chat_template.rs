//! Chat-template rendering with minijinja, set up like transformers' Jinja2 environment:
//! `trim_blocks` + `lstrip_blocks`, no autoescape, `raise_exception`, Python-style `tojson`
//! and `strftime_now`, Python string/dict methods (`.strip()`, `.items()`, ...), loop controls,
//! and the special tokens passed as variables.

use std::path::{Path, PathBuf};

use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, Value};
use serde_json::Value as Json;

use super::pyfmt;
use super::tokenizer::{invalid, read_json, SpecialTokens};
use super::TextError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentPart {
    Text(String),
    Image,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: Vec<ContentPart>,
}

impl ChatMessage {
    pub fn new(role: &str, content: Vec<ContentPart>) -> Self {
        Self { role: role.to_string(), content }
    }

    pub fn text(role: &str, text: &str) -> Self {
        Self::new(role, vec![ContentPart::Text(text.to_string())])
    }

    pub fn user_text(s: &str) -> Self {
        Self::text("user", s)
    }

    /// An image followed by text, the order HF's multimodal examples (and the fixtures) use.
    pub fn user_image_text(s: &str) -> Self {
        Self::new("user", vec![ContentPart::Image, ContentPart::Text(s.to_string())])
    }

    /// The message as the template sees it: `{"role": ..., "content": ...}` with the content
    /// shaped by `style`.
    pub fn to_template_value(&self, style: ContentStyle) -> Value {
        let content = match (style, self.content.as_slice()) {
            (ContentStyle::StringIfTextOnly, [ContentPart::Text(t)]) => Value::from(t.as_str()),
            (_, parts) => parts.iter().map(part_value).collect(),
        };
        Value::from_iter([("role", Value::from(self.role.as_str())), ("content", content)])
    }
}

/// How message content is handed to the template. HF passes whatever the caller wrote, and
/// templates depend on it: text-only ones concatenate `message['content']` (needs a string),
/// LLaVA's index `message['content'][0]['text']` (needs a list, even for a lone text part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentStyle {
    /// A message made of one text part becomes a plain string (`"content": "hi"`), the form
    /// used with HF tokenizers of text-only models; other messages become lists of parts.
    StringIfTextOnly,
    /// Always a list: `[{"type": "image"}, {"type": "text", "text": ...}]`, the form HF
    /// processors of multimodal models document.
    Parts,
}

fn part_value(part: &ContentPart) -> Value {
    match part {
        ContentPart::Text(t) => Value::from_iter([("type", Value::from("text")), ("text", Value::from(t.as_str()))]),
        ContentPart::Image => Value::from_iter([("type", Value::from("image"))]),
    }
}

const NAME: &str = "chat_template";

pub struct ChatTemplate {
    env: Environment<'static>,
    origin: PathBuf,
}

impl ChatTemplate {
    /// Finds the model's template, `Ok(None)` when it has none. Processor files come first:
    /// for multimodal checkpoints (e.g. llava-v1.6-mistral) `tokenizer_config.json` holds a
    /// text-only template while the processor's `chat_template.jinja` / `chat_template.json`
    /// holds the one HF's processor renders; a tokenizer also prefers `chat_template.jinja`.
    pub fn load(dir: &Path) -> Result<Option<Self>, TextError> {
        let jinja = dir.join("chat_template.jinja");
        match std::fs::read_to_string(&jinja) {
            Ok(src) => return Self::new(&src, jinja).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(TextError::Io { path: jinja, source }),
        }
        for file in ["chat_template.json", "tokenizer_config.json"] {
            let path = dir.join(file);
            if let Some(json) = read_json(&path)? {
                if let Some(src) = template_field(&json, &path)? {
                    return Self::new(&src, path).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// Compiles `source`; `origin` is the file it came from, named in every error.
    pub fn new(source: &str, origin: PathBuf) -> Result<Self, TextError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python_formatter);
        env.add_filter("tojson", pyfmt::tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", pyfmt::strftime_now);
        env.add_template_owned(NAME, replace_generation_tags(source))
            .map_err(|e| TextError::Template { path: origin.clone(), reason: e.to_string() })?;
        Ok(Self { env, origin })
    }

    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Renders like `apply_chat_template(messages, add_generation_prompt=..., tokenize=False)`:
    /// `messages`, `tools=None`, `documents=None`, `add_generation_prompt` and the special tokens.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        style: ContentStyle,
        special: &SpecialTokens,
    ) -> Result<String, TextError> {
        let mut vars: Vec<(&str, Value)> = vec![
            ("messages", messages.iter().map(|m| m.to_template_value(style)).collect()),
            ("tools", Value::from(())),
            ("documents", Value::from(())),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
        ];
        vars.extend(special.named().into_iter().map(|(k, v)| (k, Value::from(v))));
        if !special.additional.is_empty() {
            vars.push(("additional_special_tokens", Value::from(special.additional.clone())));
        }
        let err = |e: Error| TextError::Template { path: self.origin.clone(), reason: e.to_string() };
        self.env.get_template(NAME).map_err(err)?.render(Value::from_iter(vars)).map_err(err)
    }
}

/// `chat_template` is a string, or a list of named templates of which HF uses `"default"`.
fn template_field(json: &Json, path: &Path) -> Result<Option<String>, TextError> {
    match json.get("chat_template") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(Json::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
            .and_then(|t| t.get("template").and_then(Json::as_str))
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| invalid(path, "chat_template: list has no template named \"default\"".into())),
        Some(other) => Err(invalid(path, format!("chat_template: expected a string, got {other}"))),
    }
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, format!("raise_exception: {message}")))
}

/// Jinja2 prints Python's `str()` of a value: `None`, `True`, `False`.
fn python_formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None => out.write_str("None")?,
        ValueKind::Bool => out.write_str(if value.is_true() { "True" } else { "False" })?,
        _ => minijinja::escape_formatter(out, state, value)?,
    }
    Ok(())
}

/// HF registers a `{% generation %}...{% endgeneration %}` block tag that marks assistant
/// text and renders its body unchanged. minijinja has no custom tags, so the pair becomes an
/// always-true `if`, which keeps a block tag's trim_blocks/lstrip_blocks whitespace handling.
fn replace_generation_tags(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        // Search after the opening "{%" so "{%}" is not taken for a complete tag.
        let Some(end) = tag[2..].find("%}").map(|i| i + 4) else {
            rest = tag;
            break;
        };
        let (tag, after) = tag.split_at(end);
        let keyword = tag[2..end - 2].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        match keyword {
            "generation" => out.push_str(&tag.replacen("generation", "if true", 1)),
            "endgeneration" => out.push_str(&tag.replacen("endgeneration", "endif", 1)),
            _ => out.push_str(tag),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn unterminated_and_degenerate_tags_pass_through() {
        assert_eq!(super::replace_generation_tags("a{%}b"), "a{%}b");
        assert_eq!(super::replace_generation_tags("x {{ '{%' }}"), "x {{ '{%' }}");
        assert_eq!(super::replace_generation_tags("{% generation %}y{% endgeneration %}"), "{% if true %}y{% endif %}");
    }

    use super::*;

    fn render(src: &str, messages: &[ChatMessage]) -> Result<String, TextError> {
        let special = SpecialTokens { bos: Some("<s>".into()), eos: Some("</s>".into()), ..Default::default() };
        let style = ContentStyle::StringIfTextOnly;
        ChatTemplate::new(src, PathBuf::from("t.jinja"))?.render(messages, true, style, &special)
    }

    #[test]
    fn jinja2_features_hf_templates_use() {
        let msgs = [ChatMessage::text("system", "  sys  "), ChatMessage::user_image_text("hi")];
        let src = "{{ bos_token }}{% for m in messages %}\n  {% if m.content is string %}[{{ m.content.strip() }}]\
                   {% else %}{% for p in m.content %}{% if p.type == 'image' %}<img>{% continue %}{% endif %}\
                   {{ p['text'].upper() }}{% endfor %}{% endif %}\n{% endfor %}{{ unk_token }}{{ tools }}\
                   {% if add_generation_prompt %}|{{ eos_token }}{% endif %}";
        assert_eq!(render(src, &msgs).unwrap(), "<s>[sys]<img>HINone|</s>");
    }

    #[test]
    fn tojson_is_python_json_dumps() {
        let msgs = [ChatMessage::user_image_text("é \"q\"\n<b>")];
        let src = "{{ messages[0] | tojson }}|{{ messages[0].content[0] | tojson(indent=2) }}|{{ [1, 2.5, none, true] | tojson }}\
                   |{{ {'b': 1, 'a': 'x'} | tojson(sort_keys=true, separators=[',', ':']) }}|{{ 'é' | tojson(ensure_ascii=true) }}";
        let want = r#"{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "é \"q\"\n<b>"}]}|{
  "type": "image"
}|[1, 2.5, null, true]|{"a":"x","b":1}|"\u00e9""#;
        assert_eq!(render(src, &msgs).unwrap(), want);
    }

    #[test]
    fn raise_exception_and_syntax_errors_name_the_file() {
        let e = render("{{ raise_exception('no system role') }}", &[]).unwrap_err().to_string();
        assert!(e.contains("t.jinja") && e.contains("no system role"), "{e}");
        let e = render("{% if %}", &[]).unwrap_err().to_string();
        assert!(e.contains("t.jinja"), "{e}");
    }

    #[test]
    fn generation_tags_render_their_body() {
        let src = "{% for m in messages %}{%- generation -%}\n[{{ m.content }}]\n{%- endgeneration %}\n{% endfor %}";
        assert_eq!(render(src, &[ChatMessage::user_text("a"), ChatMessage::user_text("b")]).unwrap(), "[a][b]");
    }
}
