//! The cultures file: which cultures to plant, in which language, with which place names.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

/// One culture of the cultures file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CultureSpec {
    /// Country name; becomes the `Subset` country, so it is the group name under `--group-by country`.
    pub name: String,
    /// Language name; the `Subset` language.
    pub language: String,
    /// Place names whose tokens cue the culture in the quiz.
    pub places: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CulturesFile {
    #[serde(default)]
    culture: Vec<CultureSpec>,
}

/// Reads and checks a cultures file; every error names the file.
pub fn load_cultures(path: &Path) -> anyhow::Result<Vec<CultureSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("{}: cannot read cultures file", path.display()))?;
    parse_cultures(&text).with_context(|| format!("{}: bad cultures file", path.display()))
}

/// Parses and checks the TOML text of a cultures file (names trimmed).
pub fn parse_cultures(text: &str) -> anyhow::Result<Vec<CultureSpec>> {
    let file: CulturesFile = toml::from_str(text)?;
    let cultures: Vec<CultureSpec> = file
        .culture
        .into_iter()
        .map(|c| CultureSpec {
            name: c.name.trim().to_string(),
            language: c.language.trim().to_string(),
            places: c.places.iter().map(|p| p.trim().to_string()).collect(),
        })
        .collect();
    if cultures.len() < 2 {
        bail!("{} [[culture]] table(s); at least 2 are needed to contrast cultures", cultures.len());
    }
    // Lower-cased place -> the culture that owns it, to catch a place given to two cultures.
    let mut owner: HashMap<String, &str> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, c) in cultures.iter().enumerate() {
        if c.name.is_empty() {
            bail!("culture #{} has an empty name", i + 1);
        }
        if names.iter().any(|n| n.eq_ignore_ascii_case(&c.name)) {
            bail!("culture {:?} is listed twice", c.name);
        }
        names.push(&c.name);
        if c.language.is_empty() {
            bail!("culture {:?} has an empty language", c.name);
        }
        // The Subset column is a Python tuple of quoted strings; keep it parseable.
        for s in [&c.name, &c.language] {
            if s.contains(['\'', '"', '\\']) {
                bail!("culture {:?}: {s:?} may not contain quotes or backslashes", c.name);
            }
        }
        if c.places.is_empty() {
            bail!("culture {:?} has no places", c.name);
        }
        for p in &c.places {
            if p.is_empty() {
                bail!("culture {:?} has an empty place name", c.name);
            }
            if p.contains(['\n', '\r']) {
                bail!("culture {:?}: place {p:?} spans lines", c.name);
            }
            match owner.insert(p.to_lowercase(), &c.name) {
                Some(other) if other == c.name => bail!("culture {:?} lists place {p:?} twice", c.name),
                Some(other) => bail!("place {p:?} belongs to two cultures: {other:?} and {:?}", c.name),
                None => {}
            }
        }
    }
    Ok(cultures)
}
