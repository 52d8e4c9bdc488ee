//! Command-line arguments of the pipeline steps, shared so every step selects rows the same way.

use std::path::Path;

use clap::{Args, ValueEnum};

use super::ablate::{Mode, SignificanceOptions};
use super::collect::Weighting;
use super::data::{DataOptions, RowSplit, SplitPart};
use super::identify::{parse_method, KChoice, RandomControl};
use super::model::InputOptions;
use crate::eval::dataset::Lang;
use crate::eval::grouping::GroupBy;
use crate::eval::mc::PositionRule;
use crate::eval::prompt::PromptFormat;
use crate::eval::score::DEFAULT_FUSED_TOKENS;
use crate::models::ImageBudget;
use crate::neurons::Method;

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
    /// Identify neurons on this share of each culture's rows and measure the ablation on the
    /// rest (seeded, stratified by culture); `pipeline` runs both steps on their parts.
    #[arg(long)]
    pub eval_split: Option<f64>,
    /// Seed of --eval-split.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// The part of --eval-split this step runs on (default: identify for collect and inspect,
    /// evaluate for ablate and steer).
    #[arg(long, value_enum, requires = "eval_split")]
    pub part: Option<PartArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum PartArg {
    Identify,
    Evaluate,
}

impl DataArgs {
    /// The row selection; with --eval-split, the part `--part` names, else `default_part`.
    pub fn options(&self, default_part: SplitPart) -> anyhow::Result<DataOptions> {
        let rows = match self.eval_split {
            Some(f) => {
                let part = match self.part {
                    Some(PartArg::Identify) => SplitPart::Identify,
                    Some(PartArg::Evaluate) => SplitPart::Evaluate,
                    None => default_part,
                };
                let split = RowSplit { identify_fraction: f, seed: self.split_seed, part };
                split.check()?;
                Some(split)
            }
            None => None,
        };
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
            rows,
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
    #[arg(long, value_enum, default_value = "zero", conflicts_with = "scale")]
    pub mode: ModeArg,
    /// Scale the set instead of ablating it (a' = s·a, s ≥ 0; s > 1 steers).
    #[arg(long, allow_negative_numbers = true)]
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
            (Some(s), _) if !s.is_finite() || s < 0.0 => anyhow::bail!("--scale {s}: must be a finite number ≥ 0"),
            (Some(s), _) => Mode::Scale(s),
            (None, ModeArg::Zero) => Mode::Zero,
            (None, ModeArg::Mean) => Mode::Mean,
        })
    }
}

/// `--layers A..B` (layers A to B−1) or `A..=B` (A to B), 0-based, as [first, end).
pub fn parse_layer_band(s: &str) -> Result<[usize; 2], String> {
    let bad = || format!("{s:?}: expected A..B (layers A to B-1) or A..=B, e.g. 14..28");
    let (a, b, inclusive) = match s.split_once("..=") {
        Some((a, b)) => (a, b, true),
        None => s.split_once("..").map(|(a, b)| (a, b, false)).ok_or_else(bad)?,
    };
    let a: usize = a.trim().parse().map_err(|_| bad())?;
    let b: usize = b.trim().parse().map_err(|_| bad())?;
    let end = if inclusive { b.checked_add(1).ok_or_else(bad)? } else { b };
    if a >= end {
        return Err(format!("{s:?}: the band is empty"));
    }
    Ok([a, end])
}

#[derive(Args, Clone, Debug)]
pub struct PassArgs {
    /// Token budget of one packed batch.
    #[arg(long, default_value_t = 4096)]
    pub batch_tokens: usize,
    /// Tokens one fused pass may hold: each batch runs under several interventions at once,
    /// the layers below the first one they touch shared (0: one pass per neuron set or scale).
    #[arg(long, default_value_t = DEFAULT_FUSED_TOKENS)]
    pub fused_tokens: usize,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WeightArg {
    Token,
    Example,
}

impl WeightArg {
    pub fn weighting(self) -> Weighting {
        match self {
            WeightArg::Token => Weighting::Token,
            WeightArg::Example => Weighting::Example,
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct BandArgs {
    /// Also ablate each of N equal bands of layers on its own ("which band matters"; 0: off).
    #[arg(long, default_value_t = 3)]
    pub bands: usize,
    /// The methods whose sets the bands cut (comma-separated).
    #[arg(long, default_value = "cas")]
    pub band_methods: String,
}

impl BandArgs {
    pub fn methods(&self) -> anyhow::Result<Vec<Method>> {
        parse_method(&self.band_methods)
    }
}

#[derive(Args, Clone, Debug)]
pub struct SignificanceArgs {
    /// Bootstrap resamples of the examples for the 95 % intervals (0: no intervals, no tests).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Random label assignments of the permutation test of each gap against the random control
    /// (exact, every assignment, when there are at most 2^20).
    #[arg(long, default_value_t = 10000)]
    pub permutations: usize,
    /// Seed of the resampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SignificanceArgs {
    pub fn options(&self) -> anyhow::Result<Option<SignificanceOptions>> {
        if self.bootstrap > 0 && self.permutations == 0 {
            anyhow::bail!("--permutations 0: the test needs at least one (or --bootstrap 0 for neither)");
        }
        Ok((self.bootstrap > 0).then_some(SignificanceOptions {
            resamples: self.bootstrap,
            permutations: self.permutations,
            level: 0.95,
            seed: self.seed,
        }))
    }
}

#[derive(Args, Clone, Debug)]
pub struct RandomArgs {
    /// Sets the random control draws per culture (same per-layer counts as its CAS set).
    #[arg(long, default_value_t = 3)]
    pub random_draws: usize,
    /// Seed of the random control's draws.
    #[arg(long, default_value_t = 0)]
    pub random_seed: u64,
}

impl RandomArgs {
    pub fn control(&self) -> anyhow::Result<RandomControl> {
        if self.random_draws == 0 {
            anyhow::bail!("--random-draws 0: the random control needs at least one draw");
        }
        Ok(RandomControl { draws: self.random_draws, seed: self.random_seed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_bands_parse_half_open_and_inclusive() {
        assert_eq!(parse_layer_band("14..28"), Ok([14, 28]));
        assert_eq!(parse_layer_band("0..=3"), Ok([0, 4]));
        assert!(parse_layer_band("5..5").unwrap_err().contains("empty"));
        assert!(parse_layer_band("6..=2").unwrap_err().contains("empty"));
        assert!(parse_layer_band("3-7").unwrap_err().contains("expected A..B"));
        assert!(parse_layer_band("a..3").is_err());
    }
}
