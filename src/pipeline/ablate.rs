//! `ablate`: baseline accuracy per culture, then for each method and each culture's neuron set,
//! accuracy on every culture with that set intervened on (docs/methods.md: zero, mean, or scaled), and
//! the self/cross deltas, gap and flip rate that say whether the set is culture-specific.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::ablated_logits::AblatedLogits;
use super::collect::progress_bar;
use super::data::{DataOptions, Selected};
use super::identify::{load_stats, NeuronSets};
use super::model::{options_per_row, CultureModel};
use super::outcome::{labelled_per_group, metric_for_rows, Outcome};
use crate::eval::mc::PositionRule;
use crate::eval::score::{cache_image_features, score_under_maps, FusedCounts, Prepared};
use crate::eval::McExample;
use crate::gpu::Gpu;
use crate::models::{InterventionMaps, NeuronEdit};
use crate::neurons::stats_file::StatsFile;
use crate::neurons::Method;
use crate::report::{MethodSummary, ReportExtras, Summary};

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
    pub out: PathBuf,
    pub progress: bool,
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

/// One method's sets run: its summary, selected neurons per group and layer, and every
/// example's option logits under each culture's set ([set][example][option]).
pub struct MethodRun {
    pub summary: MethodSummary,
    pub per_group: Vec<Vec<usize>>,
    pub logits: Vec<Vec<Vec<f32>>>,
}

/// Checks that a neuron-set file fits `model` and the selected `groups`.
pub fn check_sets(model: &CultureModel, groups: &[String], sets: &NeuronSets, path: &Path) -> anyhow::Result<()> {
    // Files written before the architecture was recorded leave it empty.
    if !sets.architecture.is_empty() && sets.architecture != model.architecture() {
        anyhow::bail!(
            "{}: neuron sets of a {} model ({}), the model is a {}",
            path.display(),
            sets.architecture,
            sets.model,
            model.architecture()
        );
    }
    if sets.model_fingerprint != model.fingerprint {
        anyhow::bail!("{}: neuron sets were identified on a different model ({})", path.display(), sets.model);
    }
    if (sets.layers, sets.width) != (model.layers(), model.width()) {
        anyhow::bail!(
            "{}: neuron sets are for {} x {} neurons, the model has {} x {}",
            path.display(),
            sets.layers,
            sets.width,
            model.layers(),
            model.width()
        );
    }
    let names: Vec<&str> = sets.sets.iter().map(|s| s.group.as_str()).collect();
    if names != groups.iter().map(String::as_str).collect::<Vec<_>>() {
        anyhow::bail!("{}: neuron sets are for groups {names:?}, the data selects {:?}", path.display(), groups);
    }
    Ok(())
}

/// What one ablation study needs, already loaded.
pub struct Study<'a> {
    pub model: &'a CultureModel,
    pub examples: &'a [(usize, McExample)],
    /// The examples prepared once for all passes.
    pub prepared: Vec<Prepared>,
    pub groups: &'a [String],
    pub dataset: String,
    pub position_rule: String,
    /// Baseline option logits, one row per example.
    pub base_logits: Vec<Vec<f32>>,
    /// Pooled mean activation per neuron (mean mode).
    pub pooled_mean: Option<Vec<f64>>,
    pub max_batch_tokens: usize,
    /// Tokens one fused ablation pass may hold (0: one plain pass per set).
    pub max_fused_tokens: usize,
    pub progress: bool,
    /// Passes and token-layers the fused scoring ran, and would have run unfused.
    pub fused: std::sync::Mutex<FusedCounts>,
}

impl Study<'_> {
    /// Checks that a neuron-set file fits this model and these groups.
    pub fn check(&self, sets: &NeuronSets, path: &Path) -> anyhow::Result<()> {
        check_sets(self.model, self.groups, sets, path)
    }

    /// Each culture's set of `sets` as edits of the intervention map under `mode`.
    fn edits(&self, sets: &NeuronSets, mode: Mode) -> anyhow::Result<Vec<Vec<NeuronEdit>>> {
        let w = sets.width;
        let mean = |n: usize| -> anyhow::Result<f32> {
            Ok(self.pooled_mean.as_ref().context("mean ablation needs statistics")?[n] as f32)
        };
        sets.sets
            .iter()
            .map(|set| {
                set.neurons
                    .iter()
                    .map(|&[li, i]| {
                        let neuron = li * w + i;
                        Ok(match mode {
                            Mode::Zero => NeuronEdit { neuron, scale: 0.0, shift: 0.0 },
                            Mode::Mean => NeuronEdit { neuron, scale: 0.0, shift: mean(neuron)? },
                            Mode::Scale(s) => NeuronEdit { neuron, scale: s, shift: 0.0 },
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// Every culture's set of every method of `all`, scored in fused passes
    /// ([method][set][example][option]).
    fn score_sets(&self, all: &[&NeuronSets], mode: Mode) -> anyhow::Result<Vec<Vec<Vec<Vec<f32>>>>> {
        let mut edits = Vec::new();
        for sets in all {
            edits.extend(self.edits(sets, mode)?);
        }
        let decoder = self.model.vlm.decoder();
        let (l, w) = (decoder.config.num_hidden_layers, decoder.config.intermediate_size);
        let per_buffer = InterventionMaps::capacity(decoder.gpu(), l, w).max(1);
        let names: Vec<&str> = all.iter().map(|s| s.method.as_str()).collect();
        let bar = progress_bar(self.progress, (edits.len() * self.examples.len()) as u64, 0);
        bar.set_message(format!("ablating {} sets ({})", edits.len(), names.join(", ")));
        let mut flat = Vec::with_capacity(edits.len());
        for (i, chunk) in edits.chunks(per_buffer).enumerate() {
            let maps = InterventionMaps::new(decoder.gpu(), l, w, chunk)?;
            let done = (i * per_buffer * self.examples.len()) as u64;
            let (logits, counts) = score_under_maps(
                &self.model.vlm,
                &self.prepared,
                &self.model.option_ids,
                &maps,
                self.max_batch_tokens,
                self.max_fused_tokens,
                |k, n| bar.set_position(done + (k * chunk.len() * self.examples.len() / n.max(1)) as u64),
            )?;
            self.fused.lock().expect("fused counts poisoned").add(&counts);
            flat.extend(logits);
        }
        bar.finish_and_clear();
        let mut flat = flat.into_iter();
        Ok(all.iter().map(|s| flat.by_ref().take(s.sets.len()).collect()).collect())
    }

    /// Runs every culture's set of one method.
    pub fn run_method(&self, sets: &NeuronSets, path: &Path, mode: Mode) -> anyhow::Result<MethodRun> {
        self.check(sets, path)?;
        let logits = self.score_sets(&[sets], mode)?.remove(0);
        Ok(self.summarize(sets, logits))
    }

    /// One method's summary from its sets' logits ([set][example][option]).
    fn summarize(&self, sets: &NeuronSets, ablated_logits: Vec<Vec<Vec<f32>>>) -> MethodRun {
        let g_n = self.groups.len();
        let metric = metric_for_rows(self.examples, g_n);
        let unablated = Outcome::of(self.examples, &self.base_logits, &self.base_logits, g_n);
        let base_value = unablated.metric(metric).to_vec();
        let l = sets.layers;
        let (mut matrix, mut kept, mut prob_drop) = (Vec::new(), Vec::new(), Vec::new());
        let mut flips = 0usize;
        for logits in &ablated_logits {
            let o = Outcome::of(self.examples, &self.base_logits, logits, g_n);
            flips += o.answers.iter().zip(&unablated.answers).filter(|(a, b)| a != b).count();
            matrix.push(o.metric(metric).to_vec());
            kept.push(o.kept);
            prob_drop.push(o.prob_drop);
        }
        let self_delta: Vec<f64> = (0..g_n).map(|c| matrix[c][c] - base_value[c]).collect();
        let cross_delta: Vec<f64> = (0..g_n)
            .map(|c| {
                (0..g_n).filter(|&g| g != c).map(|g| matrix[c][g] - base_value[g]).sum::<f64>()
                    / (g_n - 1).max(1) as f64
            })
            .collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let per_group = sets.per_layer();
        let neurons_per_layer = (0..l).map(|li| per_group.iter().map(|v| v[li]).sum()).collect();
        let by_name =
            |v: &[f64]| -> BTreeMap<String, f64> { self.groups.iter().cloned().zip(v.iter().copied()).collect() };
        let s = MethodSummary {
            k: sets.k,
            set_sizes: sets.sets.iter().map(|s| (s.group.clone(), s.neurons.len())).collect(),
            self_delta: by_name(&self_delta),
            cross_delta: by_name(&cross_delta),
            mean_self_delta: mean(&self_delta),
            mean_cross_delta: mean(&cross_delta),
            gap: mean(&self_delta) - mean(&cross_delta),
            flip_rate: flips as f64 / (g_n * self.examples.len()).max(1) as f64,
            neurons_per_layer,
            matrix,
            kept,
            prob_drop,
        };
        MethodRun { summary: s, per_group, logits: ablated_logits }
    }

    /// The whole study: every method's sets.
    pub fn run(&self, sets: &[(PathBuf, NeuronSets)], mode: Mode) -> anyhow::Result<Ablation> {
        let g_n = self.groups.len();
        let metric = metric_for_rows(self.examples, g_n);
        let base = Outcome::of(self.examples, &self.base_logits, &self.base_logits, g_n);
        let mut summary = Summary {
            model: self.model.name.clone(),
            dataset: self.dataset.clone(),
            position_rule: self.position_rule.clone(),
            groups: self.groups.to_vec(),
            metric,
            base_accuracy: self.groups.iter().cloned().zip(base.metric(metric).iter().copied()).collect(),
            methods: BTreeMap::new(),
        };
        let mut extras = ReportExtras {
            mode: mode.name(),
            examples_per_group: (0..g_n).map(|g| self.examples.iter().filter(|(h, _)| *h == g).count()).collect(),
            labelled_per_group: labelled_per_group(self.examples, g_n),
            ..Default::default()
        };
        let mut logits = AblatedLogits {
            example_ids: self.examples.iter().map(|(_, e)| e.id.clone()).collect(),
            example_group: self.examples.iter().map(|(g, _)| *g).collect(),
            groups: self.groups.to_vec(),
            base: self.base_logits.clone(),
            methods: BTreeMap::new(),
        };
        for (path, s) in sets {
            self.check(s, path)?;
        }
        let all: Vec<&NeuronSets> = sets.iter().map(|(_, s)| s).collect();
        let scored = self.score_sets(&all, mode)?;
        for ((_, s), method_logits) in sets.iter().zip(scored) {
            let run = self.summarize(s, method_logits);
            summary.methods.insert(s.method.clone(), run.summary);
            extras.neurons_per_layer_per_group.insert(s.method.clone(), run.per_group);
            logits.methods.insert(s.method.clone(), run.logits);
        }
        Ok(Ablation { summary, extras, logits })
    }
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
    let examples = &sel.grouped.examples;
    for (path, s) in sets {
        check_sets(model, &sel.grouped.names, s, path)?;
    }
    let sources: std::collections::BTreeSet<&str> = sets.iter().map(|(_, s)| s.stats.as_str()).collect();
    if sources.len() > 1 {
        eprintln!("note: the neuron sets come from different statistics files: {sources:?}");
    }
    let first = &sets.first().context("no neuron sets given")?.1;
    let stats_path = o.stats.clone().unwrap_or_else(|| PathBuf::from(&first.stats));
    let stats = match load_stats(&stats_path) {
        Ok((p, s)) => {
            s.check_model(&p, &model.fingerprint, model.architecture(), model.layers(), model.width())?;
            Some(s)
        }
        Err(e) if o.mode == Mode::Mean => return Err(e.context("mean ablation needs the statistics (--stats)")),
        Err(_) => None,
    };
    let mut prepared = model.prepare(examples)?;
    let longest = prepared.iter().map(|p| p.ids.len()).max().unwrap_or(0);
    model.check_batch_capacity(longest, prepared.len(), o.max_batch_tokens)?;
    cache_image_features(&model.vlm, &mut prepared, IMAGE_FEATURE_CACHE_BYTES)?;
    let base_logits = match stats.as_ref().and_then(|s| baseline_from_stats(s, model, &sel.fingerprint, examples.len()))
    {
        Some(l) => l,
        None => {
            let bar = progress_bar(o.progress, examples.len() as u64, 0);
            bar.set_message("baseline");
            let s = model.score_prepared(&prepared, None, PositionRule::All, o.max_batch_tokens, |k, _| {
                bar.set_position(k as u64)
            })?;
            bar.finish_and_clear();
            s.option_logits
        }
    };
    let study = Study {
        model,
        examples,
        prepared,
        groups: &sel.grouped.names,
        dataset: o.data.data.clone(),
        position_rule: first.position_rule.clone(),
        base_logits,
        pooled_mean: stats.as_ref().map(|s| s.acc.pooled_mean()),
        max_batch_tokens: o.max_batch_tokens,
        max_fused_tokens: o.max_fused_tokens,
        progress: o.progress,
        fused: Default::default(),
    };
    let started = std::time::Instant::now();
    let ablation = study.run(sets, o.mode)?;
    let f = study.fused.lock().expect("fused counts poisoned").clone();
    if o.progress {
        eprintln!(
            "ablation: {} passes instead of {}, {:.1} % of the token-layers of one pass per set, {:.1} s",
            f.passes,
            f.unfused_passes,
            100.0 * f.token_layers as f64 / f.unfused_token_layers.max(1) as f64,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ablation)
}
