//! The text of a multiple-choice question as the model sees it, before the chat template: the
//! default (the format mini-CVQA and the golden fixtures use) or a template file researchers
//! write, with `{question}` and `{options}` (the lettered option lines) in it.

use std::path::Path;

use crate::eval::mc::LETTERS;

/// How a question and its options become the user turn's text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PromptFormat {
    /// "question\nA. …\nB. …\n…\nAnswer with the option letter."
    #[default]
    Default,
    /// A template: `{question}` and `{options}` replaced, `{{` and `}}` for literal braces.
    Template(Template),
}

/// A template's text, checked when made (by [`PromptFormat::template`]) and so always renderable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(String);

impl PromptFormat {
    /// Reads and checks a template file: it must use `{question}` and `{options}` once each
    /// and nothing else in braces.
    pub fn from_file(path: &Path) -> anyhow::Result<PromptFormat> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::template(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn template(text: &str) -> anyhow::Result<PromptFormat> {
        let mut seen = Vec::new();
        for piece in pieces(text)? {
            if let Piece::Field(name) = piece {
                if name != "question" && name != "options" {
                    anyhow::bail!("unknown placeholder {{{name}}} (a template takes {{question}} and {{options}})");
                }
                seen.push(name);
            }
        }
        for need in ["question", "options"] {
            match seen.iter().filter(|&&n| n == need).count() {
                1 => {}
                0 => anyhow::bail!("the template has no {{{need}}}"),
                n => anyhow::bail!("the template uses {{{need}}} {n} times; once is enough"),
            }
        }
        Ok(PromptFormat::Template(Template(text.to_string())))
    }

    /// What stats.json records: "default", or the template's text.
    pub fn describe(&self) -> String {
        match self {
            PromptFormat::Default => "default".into(),
            PromptFormat::Template(t) => t.0.clone(),
        }
    }

    /// The user turn's text for one question.
    pub fn render(&self, question: &str, options: &[String]) -> String {
        let lines: Vec<String> = LETTERS.iter().zip(options).map(|(l, o)| format!("{l}. {o}")).collect();
        match self {
            PromptFormat::Default => {
                let mut all = vec![question.to_string()];
                all.extend(lines);
                all.push("Answer with the option letter.".to_string());
                all.join("\n")
            }
            PromptFormat::Template(t) => {
                let mut out = String::new();
                for piece in pieces(&t.0).expect("checked when the template was made") {
                    match piece {
                        Piece::Text(s) => out.push_str(s),
                        Piece::Brace(c) => out.push(c),
                        Piece::Field("question") => out.push_str(question),
                        Piece::Field(_) => out.push_str(&lines.join("\n")),
                    }
                }
                out
            }
        }
    }
}

enum Piece<'a> {
    Text(&'a str),
    Brace(char),
    Field(&'a str),
}

fn pieces(t: &str) -> anyhow::Result<Vec<Piece<'_>>> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find(['{', '}']) {
        out.push(Piece::Text(&rest[..i]));
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push(Piece::Brace(tail.as_bytes()[0] as char));
            rest = &tail[2..];
        } else if let Some(stripped) = tail.strip_prefix('{') {
            let end =
                stripped.find('}').ok_or_else(|| anyhow::anyhow!("a {{ is never closed (write {{{{ for a brace)"))?;
            out.push(Piece::Field(&stripped[..end]));
            rest = &stripped[end + 1..];
        } else {
            anyhow::bail!("a }} without its {{ (write }}}} for a brace)");
        }
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_templates_render_and_bad_templates_are_refused() {
        let opts = vec!["rice".to_string(), "bread".to_string()];
        assert_eq!(PromptFormat::Default.render("Q?", &opts), "Q?\nA. rice\nB. bread\nAnswer with the option letter.");
        let t = PromptFormat::template("Question: {question}\nOptions:\n{options}\n{{letter}} only.").unwrap();
        assert_eq!(t.render("Q?", &opts), "Question: Q?\nOptions:\nA. rice\nB. bread\n{letter} only.");
        for (bad, why) in [
            ("{question}", "no {options}"),
            ("{question} {options} {answer}", "unknown placeholder {answer}"),
            ("{question} {options} {question}", "2 times"),
            ("{question} {options", "never closed"),
            ("{question} } {options}", "without its"),
        ] {
            let e = PromptFormat::template(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
