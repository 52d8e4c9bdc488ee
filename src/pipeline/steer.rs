//! Steering: one culture's neurons scaled (a' = s·a) while the model answers, either for one
//! prompt (`run --neurons`, through [`culture_edits`]) or over a sweep of scales on a whole data
//! set (`steer`: the metric on every culture at each scale, the dose-response curve).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::ablate::{check_sets, model_stats, prepare_with_baseline, set_edits, Mode};
use super::data::{model_fingerprint, DataOptions, Selected};
use super::identify::{load_stats, NeuronSets};
use super::model::{options_per_row, CultureModel};
use super::outcome::{metric_for_rows, probability, Outcome};
use crate::eval::score::score_under_maps;
use crate::gpu::Gpu;
use crate::models::config::ModelConfig;
use crate::models::{InterventionMaps, NeuronEdit};
use crate::neurons::Method;
use crate::report::SteerResult;

/// The sweep `steer` runs when none is given.
pub const DEFAULT_SCALES: [f32; 5] = [0.0, 0.5, 1.0, 2.0, 4.0];

/// Checks a sweep: at least one scale, each finite and not negative.
pub fn check_scales(scales: &[f32]) -> anyhow::Result<()> {
    if scales.is_empty() {
        anyhow::bail!("--scales: give at least one scale");
    }
    if let Some(s) = scales.iter().find(|s| !s.is_finite() || **s < 0.0) {
        anyhow::bail!("--scales: {s} is not a finite scale ≥ 0 (a' = s·a; 0 ablates, 1 is the model, > 1 steers)");
    }
    Ok(())
}

/// Edits that apply culture `culture`'s set of `method` (from the directory `identify` wrote)
/// under `mode`, checked against the model in `model_dir` without loading its weights. The
/// mean mode reads the statistics the sets came from, or `stats`.
pub fn culture_edits(
    model_dir: &Path,
    neurons: &Path,
    method: Method,
    culture: &str,
    mode: Mode,
    stats: Option<&Path>,
) -> anyhow::Result<Vec<NeuronEdit>> {
    let path = NeuronSets::path(neurons, method);
    if !path.is_file() {
        anyhow::bail!("{}: no {} neuron sets (run `culturelens identify` first)", path.display(), method.name());
    }
    let sets = NeuronSets::load(&path)?;
    let config = ModelConfig::load(model_dir)?;
    let (layers, width) = (config.text.num_hidden_layers, config.text.intermediate_size);
    sets.check_model(&path, config.architecture.hf_name(), &model_fingerprint(model_dir)?, layers, width)?;
    let (_, set) = sets.culture(culture, &path)?;
    let mean = match mode {
        Mode::Mean => {
            let (p, s) = load_stats(stats.unwrap_or(Path::new(&sets.stats)))
                .context("mean ablation needs the statistics the sets came from (--stats)")?;
            s.check_model(&p, &sets.model_fingerprint, config.architecture.hf_name(), layers, width)?;
            Some(s.acc.pooled_mean())
        }
        _ => None,
    };
    set_edits(&set.neurons, width, mode, mean.as_deref())
}

pub struct SteerOptions {
    pub model: String,
    pub data: DataOptions,
    /// The directory `identify` wrote.
    pub neurons: PathBuf,
    pub method: Method,
    pub culture: String,
    pub scales: Vec<f32>,
    /// Statistics for the baseline answers (default: those the sets came from).
    pub stats: Option<PathBuf>,
    pub max_batch_tokens: usize,
    pub max_fused_tokens: usize,
    pub out: PathBuf,
    pub progress: bool,
}

impl SteerOptions {
    /// `steer_<method>_<culture>.json` in `out` (names made file-name safe).
    pub fn json_path(&self) -> PathBuf {
        self.out.join(format!("{}.json", crate::report::steer_stem(self.method.name(), &self.culture)))
    }
}

/// Loads, checks (sweep, method, culture, model) before any model work, sweeps, and writes
/// `steer_<method>_<culture>.json`, its CSV and its figure into `out`.
pub fn steer(gpu: &std::sync::Arc<Gpu>, o: &SteerOptions) -> anyhow::Result<SteerResult> {
    check_scales(&o.scales)?;
    let path = NeuronSets::path(&o.neurons, o.method);
    if !path.is_file() {
        anyhow::bail!("{}: no {} neuron sets (run `culturelens identify` first)", path.display(), o.method.name());
    }
    let sets = NeuronSets::load(&path)?;
    sets.culture(&o.culture, &path)?;
    let sel = o.data.load()?;
    let model = CultureModel::load_with(gpu, &o.model, options_per_row(&sel.grouped.examples), &o.data.inputs)?;
    let r = steer_loaded(&model, &sel, o, &sets, &path)?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let json = o.json_path();
    std::fs::write(&json, serde_json::to_string_pretty(&r)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    crate::report::write_steer(&o.out, &r)?;
    Ok(r)
}

/// The sweep with the model, rows and sets loaded; writes nothing.
pub fn steer_loaded(
    model: &CultureModel,
    sel: &Selected,
    o: &SteerOptions,
    sets: &NeuronSets,
    path: &Path,
) -> anyhow::Result<SteerResult> {
    check_scales(&o.scales)?;
    let groups = &sel.grouped.names;
    check_sets(model, groups, sets, path)?;
    let (_, set) = sets.culture(&o.culture, path)?;
    let examples = &sel.grouped.examples;
    let stats_path = o.stats.clone().unwrap_or_else(|| PathBuf::from(&sets.stats));
    let stats = model_stats(&stats_path, model, o.stats.is_some())?;
    let (prepared, base) = prepare_with_baseline(model, sel, stats.as_ref(), o.max_batch_tokens, o.progress)?;
    // Scale 1 is the model itself: its row is the baseline, no pass needed.
    let swept: Vec<f32> = o.scales.iter().copied().filter(|&s| s != 1.0).collect();
    let edits: Vec<Vec<NeuronEdit>> = swept
        .iter()
        .map(|&s| set_edits(&set.neurons, model.width(), Mode::Scale(s), None))
        .collect::<anyhow::Result<_>>()?;
    let decoder = model.vlm.decoder();
    let maps = InterventionMaps::new(decoder.gpu(), model.layers(), model.width(), &edits)?;
    let (logits, _) = score_under_maps(
        &model.vlm,
        &prepared,
        &model.option_ids,
        &maps,
        o.max_batch_tokens,
        o.max_fused_tokens,
        |_, _| {},
    )?;
    let g_n = groups.len();
    let metric = metric_for_rows(examples, g_n);
    let mut swept_logits = logits.into_iter();
    let (mut values, mut kept, mut confidence) = (Vec::new(), Vec::new(), Vec::new());
    for &s in &o.scales {
        let l = if s == 1.0 { base.clone() } else { swept_logits.next().context("one logit block per scale")? };
        let out = Outcome::of(examples, &base, &l, g_n);
        values.push(out.metric(metric).to_vec());
        kept.push(out.kept.clone());
        confidence.push(right_option_confidence(examples, &l, g_n));
    }
    let base_out = Outcome::of(examples, &base, &base, g_n);
    Ok(SteerResult {
        model: model.name.clone(),
        dataset: o.data.data.clone(),
        method: sets.method.clone(),
        culture: o.culture.clone(),
        set_size: set.neurons.len(),
        groups: groups.clone(),
        metric,
        scales: o.scales.iter().map(|&s| s as f64).collect(),
        values,
        kept,
        confidence,
        base: base_out.metric(metric).to_vec(),
    })
}

/// Per culture, the mean softmax probability (over the letters) of the right option on
/// labelled rows (NaN where a culture has none).
pub fn right_option_confidence(
    examples: &[(usize, crate::eval::McExample)],
    logits: &[Vec<f32>],
    groups: usize,
) -> Vec<f64> {
    let (mut sum, mut n) = (vec![0.0; groups], vec![0usize; groups]);
    for ((g, ex), l) in examples.iter().zip(logits) {
        if let Some(label) = ex.label {
            let k = ex.options.len().min(l.len());
            sum[*g] += probability(&l[..k], label);
            n[*g] += 1;
        }
    }
    sum.iter().zip(&n).map(|(s, &n)| s / n as f64).collect()
}
