//! Result types of a culturelens run. `Summary` / `MethodSummary` are a published JSON schema
//! (`summary.json`): do not rename fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    pub methods: BTreeMap<String, MethodSummary>, // "cas" | "lape" | "lap" | "mad" (any subset)
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
