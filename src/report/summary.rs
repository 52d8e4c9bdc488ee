//! Result types of a culturelens run. `Summary` / `MethodSummary` are a published JSON schema
//! (`summary.json`): do not rename fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// What the ablation matrix, base values, self Δ and cross Δ measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Share of labelled rows answered correctly.
    #[default]
    Accuracy,
    /// Share of rows that keep the unablated model's answer (1 at baseline): what is left to
    /// measure when the labels are hidden.
    Kept,
}

impl Metric {
    /// How tables and figures name it.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Kept => "base answers kept",
        }
    }
}

/// Whole-run summary, written verbatim as `summary.json`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Summary {
    pub model: String,
    pub dataset: String,
    pub position_rule: String,
    pub groups: Vec<String>,
    /// What `base_accuracy`, each `matrix` and the Δs measure (absent in older files: accuracy).
    #[serde(default)]
    pub metric: Metric,
    pub base_accuracy: BTreeMap<String, f64>, // group -> fraction (of `metric`)
    pub methods: BTreeMap<String, MethodSummary>, // "cas" | "lape" | "lap" | "mad" | "random" (any subset)
    /// How the intervals and p-values were computed (absent when they were not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub significance: Option<Significance>,
    /// `--layers A..B`: every set was cut to layers [A, B) before ablating (absent: all layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_band: Option<[usize; 2]>,
    /// "Which band matters": method -> each band of layers ablated on its own (`--bands`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bands: BTreeMap<String, Vec<BandResult>>,
    /// How the rows were split between identifying the neurons and measuring the matrix
    /// (absent: the same rows did both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
}

/// The resampling behind `MethodSummary::intervals` and `p_gap_vs_random`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Significance {
    /// Interval coverage (0.95).
    pub level: f64,
    /// Bootstrap resamples of the examples, stratified by culture.
    pub resamples: usize,
    /// Random label assignments of the gap test (0: all of them were enumerated exactly).
    pub permutations: usize,
    pub seed: u64,
    /// Random-control draws averaged (0: no random control ran).
    pub random_draws: usize,
}

/// Percentile bootstrap intervals [low, high] of one method's deltas (fractions, like the deltas).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Intervals {
    pub self_delta: BTreeMap<String, [f64; 2]>,
    pub cross_delta: BTreeMap<String, [f64; 2]>,
    pub mean_self_delta: [f64; 2],
    pub mean_cross_delta: [f64; 2],
    pub gap: [f64; 2],
}

/// One band of layers ablated on its own.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BandResult {
    /// Layers [first, end).
    pub layers: [usize; 2],
    /// Neurons of the sets in the band, mean over cultures.
    pub mean_set_size: f64,
    pub mean_self_delta: f64,
    pub mean_cross_delta: f64,
    pub gap: f64,
}

/// Selection and evaluation on different rows (`--eval-split`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Share of each culture's rows the neurons were identified on.
    pub identify_fraction: f64,
    pub seed: u64,
    /// Both parts swapped and pooled: every row scored under the sets of the other part.
    pub cross_fit: bool,
    /// Rows identified on and evaluated on, per culture (first fold when cross-fitting).
    pub identify_rows: BTreeMap<String, usize>,
    pub evaluate_rows: BTreeMap<String, usize>,
}

/// Per-method scores and ablation results.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct MethodSummary {
    pub k: usize, // neurons per culture asked for
    /// group -> neurons its set actually holds (CAS and LAPE sets can fall short of k).
    #[serde(default)]
    pub set_sizes: BTreeMap<String, usize>,
    pub self_delta: BTreeMap<String, f64>, // group -> Δ accuracy (fraction, e.g. -0.083)
    pub cross_delta: BTreeMap<String, f64>,
    pub mean_self_delta: f64,
    pub mean_cross_delta: f64,
    pub gap: f64, // mean_self_delta - mean_cross_delta
    pub flip_rate: f64,
    pub neurons_per_layer: Vec<usize>, // selected neurons (union over cultures, counted per culture) per layer
    pub matrix: Vec<Vec<f64>>,         // [ablated culture][evaluated culture] `metric` after ablation
    /// [ablated][evaluated] share of rows that keep their base answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Vec<f64>>,
    /// [ablated][evaluated] mean drop of the base answer's probability (softmax over the letters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prob_drop: Vec<Vec<f64>>,
    /// Bootstrap intervals of the deltas (absent when not computed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Intervals>,
    /// Two-sided permutation p-value of this method's gap against the random control's draws,
    /// each culture's set exchanged with its draws (absent without a random control, and for
    /// it; docs/methods.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_gap_vs_random: Option<f64>,
}

/// Extra information used by the tables and figures (kept in ablation.json, not in summary.json).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct ReportExtras {
    /// method -> [group (same order as `Summary::groups`)][layer] -> selected neuron count.
    pub neurons_per_layer_per_group: BTreeMap<String, Vec<Vec<usize>>>,
    /// Ablation mode: "zero" | "mean" | "scale 0.5".
    pub mode: String,
    /// Evaluated examples per group (same order as `Summary::groups`).
    pub examples_per_group: Vec<usize>,
    /// Of those, the rows with a label (hidden labels count toward the kept rate only).
    #[serde(default)]
    pub labelled_per_group: Vec<usize>,
    /// Free-form notes, listed in the report.
    pub notes: Vec<String>,
    /// LM neurons per layer (the MLP width), for the per-layer share figure (0 in older files).
    #[serde(default)]
    pub layer_width: usize,
    /// Neuron weighting of the statistics the sets came from: "token" or "example".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub weighting: String,
}

/// `steer.json`: one culture's set scaled over a sweep, the metric on every culture at each scale.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SteerResult {
    pub model: String,
    pub dataset: String,
    pub method: String,
    /// The culture whose set was scaled.
    pub culture: String,
    /// Neurons in its set.
    pub set_size: usize,
    pub groups: Vec<String>,
    pub metric: Metric,
    /// The sweep, in the order given.
    pub scales: Vec<f64>,
    /// [scale][group] `metric` (1 = the unmodified model where no labels exist).
    #[serde(deserialize_with = "nan_grid")]
    pub values: Vec<Vec<f64>>,
    /// [scale][group] share of rows that keep their unscaled answer.
    #[serde(deserialize_with = "nan_grid")]
    pub kept: Vec<Vec<f64>>,
    /// [scale][group] mean softmax probability (over the letters) of the right option (NaN
    /// without labels).
    #[serde(deserialize_with = "nan_grid")]
    pub confidence: Vec<Vec<f64>>,
    /// Unscaled `metric` per group.
    #[serde(deserialize_with = "nan_row")]
    pub base: Vec<f64>,
}

/// serde_json writes NaN (e.g. the confidence of a culture without labels) as null, which a plain
/// `f64` refuses: read null back as NaN so that a written `steer.json` loads again.
fn nan_row<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    let row: Vec<Option<f64>> = Deserialize::deserialize(d)?;
    Ok(row.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// `nan_row` for a [scale][group] grid.
fn nan_grid<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
    let grid: Vec<Vec<Option<f64>>> = Deserialize::deserialize(d)?;
    Ok(grid.into_iter().map(|row| row.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect()).collect())
}

impl Summary {
    /// Base accuracy of group index `g` (None when absent or not finite).
    pub(crate) fn base(&self, g: usize) -> Option<f64> {
        self.groups.get(g).and_then(|name| self.base_accuracy.get(name)).copied().filter(|v| v.is_finite())
    }
}

impl MethodSummary {
    /// The smallest and largest set any culture got (k, k in files that do not record sizes).
    pub fn set_size_range(&self) -> (usize, usize) {
        let lo = self.set_sizes.values().copied().min().unwrap_or(self.k);
        let hi = self.set_sizes.values().copied().max().unwrap_or(self.k);
        (lo, hi)
    }

    /// Accuracy after ablating the set of culture `a`, evaluated on culture `e` (None when missing / not finite).
    pub(crate) fn acc(&self, a: usize, e: usize) -> Option<f64> {
        self.matrix.get(a).and_then(|row| row.get(e)).copied().filter(|v| v.is_finite())
    }

    /// Δ accuracy (fraction) of cell (a, e) vs the base accuracy of `e`.
    pub(crate) fn delta(&self, s: &Summary, a: usize, e: usize) -> Option<f64> {
        Some(self.acc(a, e)? - s.base(e)?).filter(|v| v.is_finite())
    }
}
