//! Multiple-choice prompting and scoring: the model's own chat template with the image and the
//! options, the answer = argmax of the option-letter logits at the last prompt position.

use crate::eval::prompt::PromptFormat;
use crate::text::{expand_image_tokens, ChatMessage, ContentPart, TextProcessor};

pub const LETTERS: [&str; 8] = ["A", "B", "C", "D", "E", "F", "G", "H"];

/// The first token the model would emit for each option letter: the chat rendered with an
/// assistant turn holding the letter, read at the position right after the prompt (the same
/// rule the HF reference uses, so "A" vs "▁A" is whatever the template and tokenizer make it).
pub fn option_token_ids(text: &TextProcessor, n_options: usize) -> anyhow::Result<Vec<u32>> {
    let user = ChatMessage::user_text("?");
    let prompt = text.encode_prompt(&text.render_chat(std::slice::from_ref(&user), true)?)?;
    LETTERS[..n_options]
        .iter()
        .map(|letter| {
            let full = text.render_chat(&[user.clone(), ChatMessage::text("assistant", letter)], false)?;
            let ids = text.encode_prompt(&full)?;
            ids.get(prompt.len())
                .copied()
                .ok_or_else(|| anyhow::anyhow!("the chat template renders no answer token for {letter}"))
        })
        .collect()
}

/// Checks that the chat template has an image slot: a user turn of [image, text] must render
/// exactly one image placeholder (`placeholder`), which the processor then expands.
pub fn check_image_slot(text: &TextProcessor, placeholder: &str) -> anyhow::Result<()> {
    let msg = ChatMessage::new("user", vec![ContentPart::Image, ContentPart::Text("?".into())]);
    let rendered = text.render_chat(&[msg], true)?;
    let found = rendered.matches(placeholder).count();
    if found != 1 {
        let origin = text.chat_template().map_or_else(|| text.model_dir().to_path_buf(), |t| t.origin().to_path_buf());
        anyhow::bail!(
            "{}: the chat template renders {found} image placeholders ({placeholder}) for a user turn of \
             [image, text]; a multiple-choice VQA prompt needs exactly one",
            origin.display()
        );
    }
    Ok(())
}

/// Which prompt positions count toward a culture's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionRule {
    All,
    Text,
    Image,
    Last,
}

impl PositionRule {
    pub fn parse(s: &str) -> Option<PositionRule> {
        match s {
            "all" => Some(PositionRule::All),
            "text" => Some(PositionRule::Text),
            "image" => Some(PositionRule::Image),
            "last" => Some(PositionRule::Last),
            _ => None,
        }
    }

    /// Whether position `i` of a prompt of `len` tokens counts, given whether it is an image token.
    pub fn counts(self, i: usize, len: usize, is_image: bool) -> bool {
        match self {
            PositionRule::All => true,
            PositionRule::Text => !is_image,
            PositionRule::Image => is_image,
            PositionRule::Last => i + 1 == len,
        }
    }
}

/// Prompt ids of one multiple-choice question in `format` with `image_tokens` image
/// placeholders expanded (`placeholder` = the image token's string), through the model's chat
/// template.
pub fn prompt_ids(
    text: &TextProcessor,
    format: &PromptFormat,
    question: &str,
    options: &[String],
    image: Option<(&str, usize)>,
) -> anyhow::Result<Vec<u32>> {
    let body = format.render(question, options);
    let msg = match image {
        Some(_) => ChatMessage::new("user", vec![ContentPart::Image, ContentPart::Text(body)]),
        None => ChatMessage::user_text(&body),
    };
    let rendered = text.render_chat(&[msg], true)?;
    let rendered = match image {
        Some((placeholder, n)) => expand_image_tokens(&rendered, placeholder, &[n]).map_err(anyhow::Error::msg)?,
        None => rendered,
    };
    Ok(text.encode_prompt(&rendered)?)
}

/// Index of the largest of `logits[ids[k]]`, ties to the earlier option.
pub fn pick(option_logits: &[f32]) -> usize {
    let mut best = 0;
    for (k, &v) in option_logits.iter().enumerate() {
        if v > option_logits[best] {
            best = k;
        }
    }
    best
}
