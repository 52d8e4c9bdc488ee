//! The rows a pipeline step runs on, selected the same way by every step, and the fingerprints
//! that tie statistics, neuron sets and ablations to the data and model they came from.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::eval::dataset::{load_split, Lang};
use crate::eval::grouping::{group, GroupBy, Grouped};
use crate::weights::resolve_dataset;

use super::model::InputOptions;

/// How rows are read and grouped into cultures.
#[derive(Debug, Clone)]
pub struct DataOptions {
    /// A parquet file, directory of shards, JSONL file or hub dataset id.
    pub data: String,
    /// The split of a directory (None: `test`, or the only one).
    pub split: Option<String>,
    pub group_by: GroupBy,
    pub lang: Lang,
    pub min_per_group: usize,
    /// Keep only these groups.
    pub groups: Option<Vec<String>>,
    /// First N rows of each group.
    pub limit: Option<usize>,
    /// Image budget and prompt format: how the rows become model inputs.
    pub inputs: InputOptions,
}

pub fn group_by_name(g: GroupBy) -> &'static str {
    match g {
        GroupBy::Country => "country",
        GroupBy::Language => "language",
        GroupBy::Pair => "pair",
    }
}

pub fn lang_name(l: Lang) -> &'static str {
    match l {
        Lang::En => "en",
        Lang::Native => "native",
    }
}

/// Rows grouped into cultures, plus a fingerprint of exactly what was selected.
pub struct Selected {
    pub grouped: Grouped,
    pub fingerprint: String,
}

impl DataOptions {
    pub fn load(&self) -> anyhow::Result<Selected> {
        let path = resolve_dataset(&self.data)?;
        let rows = load_split(&path, self.split.as_deref(), self.lang)?;
        let grouped = group(rows, self.group_by, self.min_per_group, self.groups.as_deref(), self.limit)?;
        if grouped.names.is_empty() {
            anyhow::bail!(
                "{}: no culture group has at least {} rows ({} skipped)",
                path.display(),
                self.min_per_group,
                grouped.skipped.len()
            );
        }
        if grouped.names.len() < 2 {
            anyhow::bail!(
                "{}: only one culture group ({}) is left; contrastive methods need at least two",
                path.display(),
                grouped.names[0]
            );
        }
        let no_image: Vec<&str> =
            grouped.examples.iter().filter(|(_, e)| e.image.is_none()).map(|(_, e)| e.id.as_str()).collect();
        if let Some(first) = no_image.first() {
            anyhow::bail!(
                "{}: row {first} has no image ({} rows without one); every question of a VQA run needs its image",
                path.display(),
                no_image.len()
            );
        }
        let fingerprint = fingerprint(&grouped);
        Ok(Selected { grouped, fingerprint })
    }
}

fn fingerprint(g: &Grouped) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    for name in &g.names {
        field(name.as_bytes());
    }
    for (k, ex) in &g.examples {
        field(&(*k as u64).to_le_bytes());
        field(ex.id.as_bytes());
        field(ex.question.as_bytes());
        for o in &ex.options {
            field(o.as_bytes());
        }
        field(&ex.label.map_or(u64::MAX, |l| l as u64).to_le_bytes());
        field(ex.image.as_deref().unwrap_or(&[]));
    }
    hex(&h.finalize())
}

/// Files besides config.json that change what a run computes: prompt ids (tokenizer, chat
/// template, special tokens), image tokens (processor settings) and positions (sidecar).
const FINGERPRINTED: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "processor_config.json",
    "culturelens.toml",
];

/// sha256 of config.json, the tokenizer, template, processor and sidecar files, plus every
/// weight file's name and size (reading 15 GB of weights to hash them would cost more than the
/// run).
pub fn model_fingerprint(dir: &Path) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    let config = dir.join("config.json");
    h.update(std::fs::read(&config).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?);
    for name in FINGERPRINTED {
        let p = dir.join(name);
        if p.is_file() {
            h.update(name.as_bytes());
            h.update(std::fs::read(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?);
        }
    }
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().map(|m| m.len()).unwrap_or(0)))
        .collect();
    files.sort();
    for (name, len) in files {
        h.update(name.as_bytes());
        h.update(len.to_le_bytes());
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
