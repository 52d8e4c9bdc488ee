//! `ablate`: baseline accuracy per culture, then for each method and each culture's neuron set,
//! accuracy on every culture with that set intervened on (docs/methods.md: zero, mean, or scaled), and
//! the self/cross deltas, gap and flip rate that say whether the set is culture-specific.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::ablated_logits::AblatedLogits;
use super::collect::progress_bar;
use super::data::{DataOptions, Selected};
use super::identify::{load_stats, NeuronSets};
use super::model::{options_per_row, CultureModel};
pub use super::study::{equal_bands, set_edits, MethodRun, SignificanceOptions, Study, StudyPlan};
use crate::eval::mc::PositionRule;
use crate::eval::score::{cache_image_features, Prepared};
use crate::gpu::Gpu;
use crate::neurons::stats_file::StatsFile;
use crate::neurons::Method;
use crate::report::{ReportExtras, Summary};

/// Host memory the ablation passes may spend on keeping image features (else the vision
/// tower reruns every pass).
const IMAGE_FEATURE_CACHE_BYTES: usize = 2 << 30;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// a' = 0.
    Zero,
    /// a' = μ, the neuron's mean over every counted position of every culture.
    Mean,
    /// a' = s·a (steering when s > 1).
    Scale(f32),
}

impl Mode {
    pub fn name(self) -> String {
        match self {
            Mode::Zero => "zero".into(),
            Mode::Mean => "mean".into(),
            Mode::Scale(s) => format!("scale {s}"),
        }
    }
}

pub struct AblateOptions {
    pub model: String,
    pub data: DataOptions,
    /// The directory `identify` wrote.
    pub neurons: PathBuf,
    /// None: every method whose sets are in `neurons`.
    pub methods: Option<Vec<Method>>,
    pub mode: Mode,
    /// Statistics for the mean mode and for the baseline answers (default: the file the neuron
    /// sets were identified from).
    pub stats: Option<PathBuf>,
    pub max_batch_tokens: usize,
    /// Tokens one fused pass may hold: copies of a batch under several sets (0: no fusion).
    pub max_fused_tokens: usize,
    /// Cut every set to layers [first, end) (`--layers A..B`).
    pub layer_band: Option<[usize; 2]>,
    /// Also ablate each of this many equal bands of layers alone, for `band_methods`.
    pub bands: usize,
    pub band_methods: Vec<Method>,
    /// Bootstrap intervals and permutation tests (None: neither).
    pub significance: Option<SignificanceOptions>,
    pub out: PathBuf,
    pub progress: bool,
}

impl AblateOptions {
    /// The band cut and the study plan for a model of `layers` layers, checked before any work.
    pub fn plan(&self, layers: usize) -> anyhow::Result<(Option<[usize; 2]>, StudyPlan)> {
        if let Some([a, b]) = self.layer_band {
            if a >= b {
                anyhow::bail!("--layers {a}..{b}: the band is empty");
            }
            if b > layers {
                anyhow::bail!("--layers {a}..{b}: the model has {layers} layers (0..{layers})");
            }
        }
        let bands = equal_bands(layers, self.bands);
        let band_methods = self.band_methods.iter().map(|m| m.name().to_string()).collect();
        Ok((self.layer_band, StudyPlan { bands, band_methods, significance: self.significance }))
    }
}

/// `ablation.json`: what `report` renders; plus every example's letter logits, written beside
/// it as `ablated_logits.safetensors`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ablation {
    pub summary: Summary,
    pub extras: ReportExtras,
    #[serde(skip)]
    pub logits: AblatedLogits,
}

impl Ablation {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("ablation.json")
    }

    /// Writes `ablation.json` and, when it holds any, `ablated_logits.safetensors`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        if !self.logits.base.is_empty() {
            self.logits.save(dir)?;
        }
        let p = Self::path(dir);
        std::fs::write(&p, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("writing {}", p.display()))?;
        Ok(p)
    }

    pub fn load(path: &Path) -> anyhow::Result<Ablation> {
        let p = if path.is_dir() { Self::path(path) } else { path.to_path_buf() };
        let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a culturelens ablation.json", p.display()))
    }
}

/// Checks that a neuron-set file fits `model` and the selected `groups`.
pub fn check_sets(model: &CultureModel, groups: &[String], sets: &NeuronSets, path: &Path) -> anyhow::Result<()> {
    sets.check_model(path, model.architecture(), &model.fingerprint, model.layers(), model.width())?;
    let names: Vec<&str> = sets.sets.iter().map(|s| s.group.as_str()).collect();
    if names != groups.iter().map(String::as_str).collect::<Vec<_>>() {
        anyhow::bail!("{}: neuron sets are for groups {names:?}, the data selects {:?}", path.display(), groups);
    }
    Ok(())
}

/// Statistics from `path`, checked to be of `model` (another model's are an error). Without
/// usable statistics there: an error when `required`, else None (the baseline then costs a pass).
pub fn model_stats(path: &Path, model: &CultureModel, required: bool) -> anyhow::Result<Option<StatsFile>> {
    match load_stats(path) {
        Ok((p, s)) => {
            s.check_model(&p, &model.fingerprint, model.architecture(), model.layers(), model.width())?;
            Ok(Some(s))
        }
        Err(e) if required => Err(e),
        Err(_) => Ok(None),
    }
}

/// The examples prepared once for many passes (image features cached where they fit) and
/// their baseline letter logits: the statistics run's when it ran on exactly these rows, else
/// one pass.
pub fn prepare_with_baseline(
    model: &CultureModel,
    sel: &Selected,
    stats: Option<&StatsFile>,
    max_batch_tokens: usize,
    progress: bool,
) -> anyhow::Result<(Vec<Prepared>, Vec<Vec<f32>>)> {
    let examples = &sel.grouped.examples;
    let mut prepared = model.prepare(examples)?;
    let longest = prepared.iter().map(|p| p.ids.len()).max().unwrap_or(0);
    model.check_batch_capacity(longest, prepared.len(), max_batch_tokens)?;
    cache_image_features(&model.vlm, &mut prepared, IMAGE_FEATURE_CACHE_BYTES)?;
    let base = match stats.and_then(|s| baseline_from_stats(s, model, &sel.fingerprint, examples.len())) {
        Some(l) => l,
        None => {
            let bar = progress_bar(progress, examples.len() as u64, 0);
            bar.set_message("baseline");
            let s = model.score_prepared(&prepared, None, PositionRule::All, max_batch_tokens, |k, _| {
                bar.set_position(k as u64)
            })?;
            bar.finish_and_clear();
            s.option_logits
        }
    };
    Ok((prepared, base))
}

/// Baseline logits: the statistics run's, when it ran this model on exactly these rows.
pub fn baseline_from_stats(
    stats: &StatsFile,
    model: &CultureModel,
    fingerprint: &str,
    rows: usize,
) -> Option<Vec<Vec<f32>>> {
    let m = &stats.meta;
    let same = m.complete
        && m.model_fingerprint == model.fingerprint
        && m.dataset_fingerprint == fingerprint
        && stats.example_index.len() == rows
        && stats.example_index.iter().enumerate().all(|(i, &r)| r == i as u64)
        && stats.option_logits.first().is_none_or(|r| r.len() == model.option_ids.len())
        && (m.option_token_ids.is_empty() || m.option_token_ids == model.option_ids)
        && m.prompt_format == model.prompt.describe()
        && m.precision == model.vlm.decoder().gpu().precision.name()
        && (m.image_budget.is_none() || m.image_budget == model.vlm.pixel_bounds());
    same.then(|| stats.option_logits.clone())
}

/// The neuron sets an ablation runs, each file loaded and checked before any model work:
/// `methods`, or (None) every method whose `neurons_<method>.json` is in `dir`.
pub fn load_neuron_sets(dir: &Path, methods: Option<&[Method]>) -> anyhow::Result<Vec<(PathBuf, NeuronSets)>> {
    let wanted: Vec<Method> = match methods {
        Some(m) => m.to_vec(),
        None => Method::EVERY.into_iter().filter(|&m| NeuronSets::path(dir, m).is_file()).collect(),
    };
    if wanted.is_empty() {
        anyhow::bail!("{}: no neurons_<method>.json files (run `culturelens identify` first)", dir.display());
    }
    let missing: Vec<String> = wanted
        .iter()
        .map(|&m| NeuronSets::path(dir, m))
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        anyhow::bail!("neuron sets not found: {}", missing.join(", "));
    }
    wanted
        .into_iter()
        .map(|m| {
            let path = NeuronSets::path(dir, m);
            NeuronSets::load(&path).map(|s| (path, s))
        })
        .collect()
}

pub fn ablate(gpu: &std::sync::Arc<Gpu>, o: &AblateOptions) -> anyhow::Result<Ablation> {
    let sets = load_neuron_sets(&o.neurons, o.methods.as_deref())?;
    o.plan(sets[0].1.layers)?;
    let sel = o.data.load()?;
    let model = CultureModel::load_with(gpu, &o.model, options_per_row(&sel.grouped.examples), &o.data.inputs)?;
    let ablation = ablate_loaded(&model, &sel, o, &sets)?;
    ablation.save(&o.out)?;
    Ok(ablation)
}

/// `ablate` with the model, rows and neuron sets already loaded; does not write.
pub fn ablate_loaded(
    model: &CultureModel,
    sel: &Selected,
    o: &AblateOptions,
    sets: &[(PathBuf, NeuronSets)],
) -> anyhow::Result<Ablation> {
    let StudyInputs { study, sets, plan } = prepare_study(model, sel, o, sets)?;
    let started = std::time::Instant::now();
    let scored = study.score_plan(&sets, o.mode, &plan)?;
    study.report_passes(started);
    let mut ablation = study.assemble(&sets, o.mode, &plan, scored)?;
    ablation.summary.layer_band = o.layer_band;
    Ok(ablation)
}

/// What `ablate` runs, checked and loaded.
pub struct StudyInputs<'a> {
    /// The study over the selected rows.
    pub study: Study<'a>,
    /// The neuron sets, cut to `--layers`.
    pub sets: Vec<(PathBuf, NeuronSets)>,
    pub plan: StudyPlan,
}

/// Checks and loads what `ablate` runs on `sel`'s rows.
pub fn prepare_study<'a>(
    model: &'a CultureModel,
    sel: &'a Selected,
    o: &AblateOptions,
    sets: &[(PathBuf, NeuronSets)],
) -> anyhow::Result<StudyInputs<'a>> {
    for (path, s) in sets {
        check_sets(model, &sel.grouped.names, s, path)?;
    }
    let (band, plan) = o.plan(model.layers())?;
    if !plan.bands.is_empty() {
        for m in plan.band_methods.iter().filter(|m| !sets.iter().any(|(_, s)| &s.method == *m)) {
            eprintln!("note: --band-methods {m}: no {m} sets are ablated, so no bands for it");
        }
    }
    let sets: Vec<(PathBuf, NeuronSets)> = match band {
        Some([a, b]) => sets.iter().map(|(p, s)| (p.clone(), s.in_band(a, b))).collect(),
        None => sets.to_vec(),
    };
    let sources: std::collections::BTreeSet<&str> = sets.iter().map(|(_, s)| s.stats.as_str()).collect();
    if sources.len() > 1 {
        eprintln!("note: the neuron sets come from different statistics files: {sources:?}");
    }
    let first = &sets.first().context("no neuron sets given")?.1;
    let stats_path = o.stats.clone().unwrap_or_else(|| PathBuf::from(&first.stats));
    let stats = model_stats(&stats_path, model, o.mode == Mode::Mean).map_err(|e| {
        if o.mode == Mode::Mean {
            e.context("mean ablation needs the statistics (--stats)")
        } else {
            e
        }
    })?;
    let (prepared, base_logits) = prepare_with_baseline(model, sel, stats.as_ref(), o.max_batch_tokens, o.progress)?;
    let study = Study {
        model,
        examples: &sel.grouped.examples,
        prepared,
        groups: &sel.grouped.names,
        dataset: o.data.data.clone(),
        position_rule: first.position_rule.clone(),
        base_logits,
        pooled_mean: stats.as_ref().map(|s| s.acc.pooled_mean()),
        weighting: stats.as_ref().map_or(String::new(), |s| s.meta.weighting.clone()),
        max_batch_tokens: o.max_batch_tokens,
        max_fused_tokens: o.max_fused_tokens,
        progress: o.progress,
        fused: Default::default(),
    };
    Ok(StudyInputs { study, sets, plan })
}
