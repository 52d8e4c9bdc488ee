//! The rows a pipeline step runs on, selected the same way by every step, and the fingerprints
//! that tie statistics, neuron sets and ablations to the data and model they came from.

use std::path::Path;

use anyhow::Context;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
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
    /// Only one part of each culture's rows (`--eval-split`).
    pub rows: Option<RowSplit>,
}

/// Each culture's rows cut in two, seeded and stratified by culture: one part to identify
/// neurons on, the other to measure the ablation on (selecting and evaluating on the same
/// questions overstates the effect).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowSplit {
    /// Share of each culture's rows in the identify part.
    pub identify_fraction: f64,
    pub seed: u64,
    pub part: SplitPart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitPart {
    Identify,
    Evaluate,
}

impl SplitPart {
    pub fn other(self) -> SplitPart {
        match self {
            SplitPart::Identify => SplitPart::Evaluate,
            SplitPart::Evaluate => SplitPart::Identify,
        }
    }
}

impl RowSplit {
    pub fn check(&self) -> anyhow::Result<()> {
        if !(self.identify_fraction > 0.0 && self.identify_fraction < 1.0) {
            anyhow::bail!("--eval-split {}: the identify share must be between 0 and 1", self.identify_fraction);
        }
        Ok(())
    }

    /// Whether each row of `g` is in this part. Per culture, its rows are shuffled with a
    /// stream seeded by (seed, culture name), so adding or dropping another culture moves no
    /// row, and the first round(fraction · n) go to the identify part.
    pub fn mask(&self, g: &Grouped) -> anyhow::Result<Vec<bool>> {
        self.check()?;
        let mut keep = vec![false; g.examples.len()];
        for (gi, name) in g.names.iter().enumerate() {
            let rows: Vec<usize> = (0..g.examples.len()).filter(|&r| g.examples[r].0 == gi).collect();
            let n = rows.len();
            if n < 2 {
                anyhow::bail!(
                    "--eval-split {}: culture {name} has {n} rows, too few to identify on some and evaluate on others",
                    self.identify_fraction
                );
            }
            // Both parts get at least one row of every culture.
            let k = ((self.identify_fraction * n as f64).round() as usize).clamp(1, n - 1);
            let mut h = Sha256::new();
            h.update(self.seed.to_le_bytes());
            h.update(name.as_bytes());
            let mut rng = ChaCha8Rng::from_seed(h.finalize().into());
            let mut order = rows;
            order.shuffle(&mut rng);
            let (identify, evaluate) = order.split_at(k);
            for &r in if self.part == SplitPart::Identify { identify } else { evaluate } {
                keep[r] = true;
            }
        }
        Ok(keep)
    }

    /// `g` cut to this part, rows in their input order.
    pub fn apply(&self, g: Grouped) -> anyhow::Result<Grouped> {
        let keep = self.mask(&g)?;
        let mut keep = keep.into_iter();
        let Grouped { names, examples, skipped } = g;
        let examples = examples.into_iter().filter(|_| keep.next().unwrap_or(false)).collect();
        Ok(Grouped { names, examples, skipped })
    }
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
        let grouped = match self.rows {
            Some(split) => split.apply(grouped).with_context(|| path.display().to_string())?,
            None => grouped,
        };
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

impl Selected {
    /// These rows cut to one part of `split`.
    pub fn part(&self, split: RowSplit) -> anyhow::Result<Selected> {
        let grouped = split.apply(Grouped {
            names: self.grouped.names.clone(),
            examples: self.grouped.examples.clone(),
            skipped: self.grouped.skipped.clone(),
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::McExample;

    fn grouped(per: &[usize]) -> Grouped {
        let mut examples = Vec::new();
        for (g, &n) in per.iter().enumerate() {
            for i in 0..n {
                let ex = McExample {
                    id: format!("{g}-{i}"),
                    language: String::new(),
                    country: String::new(),
                    question: String::new(),
                    options: vec![],
                    label: None,
                    image: None,
                    category: String::new(),
                };
                examples.push((g, ex));
            }
        }
        Grouped { names: (0..per.len()).map(|g| format!("c{g}")).collect(), examples, skipped: vec![] }
    }

    #[test]
    fn split_parts_are_complementary_stratified_and_seeded() {
        let g = grouped(&[10, 7]);
        let split = |part, seed| RowSplit { identify_fraction: 0.5, seed, part };
        let a = split(SplitPart::Identify, 1).mask(&g).unwrap();
        let b = split(SplitPart::Evaluate, 1).mask(&g).unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| x != y), "every row is in exactly one part");
        // round(0.5 · 10) = 5 and round(0.5 · 7) = 4 (half away from zero) per culture.
        assert_eq!(a[..10].iter().filter(|&&x| x).count(), 5);
        assert_eq!(a[10..].iter().filter(|&&x| x).count(), 4);
        assert_eq!(split(SplitPart::Identify, 1).mask(&g).unwrap(), a, "same seed, same split");
        assert_ne!(split(SplitPart::Identify, 2).mask(&g).unwrap(), a, "another seed, another split");
        // Culture c1's rows fall the same way without culture c0.
        let c1_alone = Grouped {
            names: vec!["c1".into()],
            examples: g.examples[10..].iter().map(|(_, e)| (0, e.clone())).collect(),
            skipped: vec![],
        };
        assert_eq!(split(SplitPart::Identify, 1).mask(&c1_alone).unwrap(), a[10..].to_vec());
    }

    #[test]
    fn split_refuses_what_it_cannot_cut() {
        let g = grouped(&[1, 4]);
        let e = RowSplit { identify_fraction: 0.5, seed: 0, part: SplitPart::Identify }.mask(&g).unwrap_err();
        assert!(e.to_string().contains("culture c0 has 1 rows"), "{e}");
        for f in [0.0, 1.0, -0.5, f64::NAN] {
            let e = RowSplit { identify_fraction: f, seed: 0, part: SplitPart::Identify }.check().unwrap_err();
            assert!(e.to_string().contains("between 0 and 1"), "{e}");
        }
    }
}
