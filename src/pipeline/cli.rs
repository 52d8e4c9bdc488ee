//! Command-line arguments of the pipeline steps, shared so every step selects rows the same way.

use std::path::Path;

use clap::{Args, ValueEnum};

use super::ablate::Mode;
use super::data::DataOptions;
use super::identify::KChoice;
use super::model::InputOptions;
use crate::eval::dataset::Lang;
use crate::eval::grouping::GroupBy;
use crate::eval::mc::PositionRule;
use crate::eval::prompt::PromptFormat;
use crate::models::ImageBudget;

/// The bundled demo: the trained tiny Qwen2.5-VL and mini-CVQA's test split.
pub const BUNDLED_VL_MODEL: &str = "assets/models/culture-tiny-qwen2_5_vl";
pub const BUNDLED_DATA: &str = "assets/data/mini-cvqa/test.parquet";

/// A bundled path relative to the working directory (a checkout), else in the source tree this
/// binary was built from; any other path unchanged.
pub fn bundled(path: &str, default: &str) -> String {
    if path == default && !Path::new(path).exists() {
        return format!("{}/{default}", env!("CARGO_MANIFEST_DIR"));
    }
    path.to_string()
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GroupByArg {
    Country,
    Language,
    Pair,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LangArg {
    /// `Translated Question` / `Translated Options`.
    En,
    /// `Question` / `Options`, in the culture's own language.
    Native,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RuleArg {
    All,
    Text,
    Image,
    Last,
}

impl RuleArg {
    pub fn rule(self) -> PositionRule {
        match self {
            RuleArg::All => PositionRule::All,
            RuleArg::Text => PositionRule::Text,
            RuleArg::Image => PositionRule::Image,
            RuleArg::Last => PositionRule::Last,
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct DataArgs {
    /// CVQA-style parquet file, directory of parquet shards, JSONL file, or hub dataset id in the
    /// local HF cache (e.g. afaji/cvqa).
    #[arg(long, default_value = BUNDLED_DATA)]
    pub data: String,
    /// The split of a data set folder or hub id (`test`, `validation`, or with its config:
    /// `default/test`); default: test, or the only split there is.
    #[arg(long)]
    pub split: Option<String>,
    /// What a culture is.
    #[arg(long, value_enum, default_value = "country")]
    pub group_by: GroupByArg,
    /// Question and options in English or in the culture's own language.
    #[arg(long, value_enum, default_value = "en")]
    pub lang: LangArg,
    /// Drop (and report) cultures with fewer rows.
    #[arg(long, default_value_t = 1)]
    pub min_per_group: usize,
    /// Keep only these cultures (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    pub groups: Option<Vec<String>>,
    /// First N rows of each culture.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Qwen2.5-VL: resize images to at least this many pixels (default: the processor's).
    #[arg(long)]
    pub min_pixels: Option<usize>,
    /// Qwen2.5-VL: resize images to at most this many pixels (default: the processor's,
    /// 12845056 for Qwen2.5-VL-7B; a 3-megapixel photo is then about 3800 image tokens).
    #[arg(long)]
    pub max_pixels: Option<usize>,
    /// How a question and its options become the user turn: `default` ("question\nA. …\n…\nAnswer
    /// with the option letter."), or a template file with {question} and {options}.
    #[arg(long, default_value = "default")]
    pub prompt_format: String,
}

impl DataArgs {
    pub fn options(&self) -> anyhow::Result<DataOptions> {
        let prompt = match self.prompt_format.as_str() {
            "default" => PromptFormat::Default,
            file => PromptFormat::from_file(Path::new(file))?,
        };
        Ok(DataOptions {
            data: bundled(&self.data, BUNDLED_DATA),
            split: self.split.clone(),
            group_by: match self.group_by {
                GroupByArg::Country => GroupBy::Country,
                GroupByArg::Language => GroupBy::Language,
                GroupByArg::Pair => GroupBy::Pair,
            },
            lang: match self.lang {
                LangArg::En => Lang::En,
                LangArg::Native => Lang::Native,
            },
            min_per_group: self.min_per_group,
            groups: self.groups.clone(),
            limit: self.limit,
            inputs: InputOptions {
                budget: ImageBudget { min_pixels: self.min_pixels, max_pixels: self.max_pixels },
                prompt,
            },
        })
    }
}

#[derive(Args, Clone, Debug)]
pub struct KArgs {
    /// Neurons per culture, the same for every method.
    #[arg(long, conflicts_with = "k_frac")]
    pub k: Option<usize>,
    /// Neurons per culture as a fraction of all LM neurons (default 0.03).
    #[arg(long)]
    pub k_frac: Option<f64>,
}

impl KArgs {
    pub fn choice(&self) -> KChoice {
        match (self.k, self.k_frac) {
            (Some(k), _) => KChoice::Count(k),
            (None, Some(f)) => KChoice::Fraction(f),
            (None, None) => KChoice::Fraction(0.03),
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct ModeArgs {
    /// zero: a' = 0; mean: a' = the neuron's mean over all cultures.
    #[arg(long, value_enum, default_value = "zero")]
    pub mode: ModeArg,
    /// Scale the set instead of ablating it (a' = s·a; s > 1 steers).
    #[arg(long)]
    pub scale: Option<f32>,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum ModeArg {
    Zero,
    Mean,
}

impl ModeArgs {
    pub fn mode(&self) -> anyhow::Result<Mode> {
        Ok(match (self.scale, self.mode) {
            (Some(s), _) if !s.is_finite() => anyhow::bail!("--scale {s}: must be a finite number"),
            (Some(s), _) => Mode::Scale(s),
            (None, ModeArg::Zero) => Mode::Zero,
            (None, ModeArg::Mean) => Mode::Mean,
        })
    }
}
