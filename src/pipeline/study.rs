//! One ablation study over loaded rows: every method's sets (every draw of the random
//! control), the layer bands, each scored in fused passes under intervention maps, then
//! summarised into the matrix, deltas, intervals and permutation tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::ablate::{check_sets, Ablation, Mode};
use super::ablated_logits::AblatedLogits;
use super::collect::progress_bar;
use super::identify::NeuronSets;
use super::model::CultureModel;
use super::outcome::{counted_rows, example_values, labelled_per_group, metric_for_rows, Outcome};
use crate::eval::score::{score_under_maps, FusedCounts, Prepared};
use crate::eval::significance::{bootstrap, gap_permutation_p, Cells};
use crate::eval::McExample;
use crate::models::{InterventionMaps, NeuronEdit};
use crate::neurons::Method;
use crate::report::{BandResult, Intervals, MethodSummary, ReportExtras, Significance, Summary};

/// One method's sets run: its summary, selected neurons per group and layer, and every
/// example's option logits under each culture's set ([draw · groups + set][example][option]).
pub struct MethodRun {
    pub summary: MethodSummary,
    pub per_group: Vec<Vec<usize>>,
    pub logits: Vec<Vec<Vec<f32>>>,
    /// Each example's value under each culture's set (the mean over draws).
    pub cells: Cells,
    /// The same, draw by draw (one for every method but the random control).
    pub draws: Vec<Cells>,
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
    /// The statistics' weighting ("token" or "example"; empty when unknown), for the report.
    pub weighting: String,
    pub max_batch_tokens: usize,
    /// Tokens one fused ablation pass may hold (0: one plain pass per set).
    pub max_fused_tokens: usize,
    pub progress: bool,
    /// Passes and token-layers the fused scoring ran, and would have run unfused.
    pub fused: std::sync::Mutex<FusedCounts>,
}

impl Study<'_> {
    /// Prints how many passes the fused scoring ran against one pass per set.
    pub fn report_passes(&self, started: std::time::Instant) {
        let f = self.fused.lock().expect("fused counts poisoned").clone();
        if self.progress {
            eprintln!(
                "ablation: {} passes instead of {}, {:.1} % of the token-layers of one pass per set, {:.1} s",
                f.passes,
                f.unfused_passes,
                100.0 * f.token_layers as f64 / f.unfused_token_layers.max(1) as f64,
                started.elapsed().as_secs_f64()
            );
        }
    }

    /// Checks that a neuron-set file fits this model and these groups.
    pub fn check(&self, sets: &NeuronSets, path: &Path) -> anyhow::Result<()> {
        check_sets(self.model, self.groups, sets, path)
    }

    /// Each culture's set of every draw of `sets` ([draw · groups + culture]) as edits of the
    /// intervention map under `mode`.
    fn edits(&self, sets: &NeuronSets, mode: Mode) -> anyhow::Result<Vec<Vec<NeuronEdit>>> {
        sets.draws()
            .into_iter()
            .flatten()
            .map(|set| set_edits(&set.neurons, sets.width, mode, self.pooled_mean.as_deref()))
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
        Ok(all.iter().map(|s| flat.by_ref().take(s.draws().len() * s.sets.len()).collect()).collect())
    }

    /// Runs every culture's set of one method.
    pub fn run_method(&self, sets: &NeuronSets, path: &Path, mode: Mode) -> anyhow::Result<MethodRun> {
        self.check(sets, path)?;
        let logits = self.score_sets(&[sets], mode)?.remove(0);
        Ok(self.summarize(sets, logits))
    }

    /// One method's summary from its sets' logits ([draw · groups + set][example][option]): the
    /// mean over draws where there are several (the random control).
    fn summarize(&self, sets: &NeuronSets, ablated_logits: Vec<Vec<Vec<f32>>>) -> MethodRun {
        let g_n = self.groups.len();
        let (summaries, draws): (Vec<MethodSummary>, Vec<Cells>) =
            ablated_logits.chunks(g_n.max(1)).map(|d| self.summarize_draw(sets, d)).unzip();
        let n = draws.len().max(1) as f64;
        let mut mean = Cells { value: vec![vec![0.0; self.examples.len()]; g_n], ..draws[0].clone() };
        for d in &draws {
            for (acc, x) in mean.value.iter_mut().flatten().zip(d.value.iter().flatten()) {
                *acc += x / n;
            }
        }
        MethodRun {
            summary: mean_summary(&summaries),
            per_group: sets.per_layer(),
            logits: ablated_logits,
            cells: mean,
            draws,
        }
    }

    /// One draw's summary ([set][example][option]) and each example's outcome under each set.
    fn summarize_draw(&self, sets: &NeuronSets, ablated_logits: &[Vec<Vec<f32>>]) -> (MethodSummary, Cells) {
        let g_n = self.groups.len();
        let metric = metric_for_rows(self.examples, g_n);
        let unablated = Outcome::of(self.examples, &self.base_logits, &self.base_logits, g_n);
        let l = sets.layers;
        let (mut matrix, mut kept, mut prob_drop, mut values) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut flips = 0usize;
        for logits in ablated_logits {
            let o = Outcome::of(self.examples, &self.base_logits, logits, g_n);
            flips += o.answers.iter().zip(&unablated.answers).filter(|(a, b)| a != b).count();
            matrix.push(o.metric(metric).to_vec());
            kept.push(o.kept);
            prob_drop.push(o.prob_drop);
            values.push(example_values(self.examples, &self.base_logits, logits, metric));
        }
        let cells = Cells {
            groups: g_n,
            group: self.examples.iter().map(|(g, _)| *g).collect(),
            counted: counted_rows(self.examples, metric),
            base: example_values(self.examples, &self.base_logits, &self.base_logits, metric),
            value: values,
        };
        // The deltas come from the same per-example outcomes as their intervals and tests.
        let d = cells.observed();
        let per_group = sets.per_layer();
        let neurons_per_layer = (0..l).map(|li| per_group.iter().map(|v| v[li]).sum()).collect();
        let by_name =
            |v: &[f64]| -> BTreeMap<String, f64> { self.groups.iter().cloned().zip(v.iter().copied()).collect() };
        let s = MethodSummary {
            k: sets.k,
            set_sizes: sets.sets.iter().map(|s| (s.group.clone(), s.neurons.len())).collect(),
            self_delta: by_name(&d.self_delta),
            cross_delta: by_name(&d.cross_delta),
            mean_self_delta: d.mean_self,
            mean_cross_delta: d.mean_cross,
            gap: d.gap,
            flip_rate: flips as f64 / (g_n * self.examples.len()).max(1) as f64,
            neurons_per_layer,
            matrix,
            kept,
            prob_drop,
            intervals: None,
            p_gap_vs_random: None,
        };
        (s, cells)
    }

    /// The whole study: every method's sets, nothing more.
    pub fn run(&self, sets: &[(PathBuf, NeuronSets)], mode: Mode) -> anyhow::Result<Ablation> {
        self.run_with(sets, mode, &StudyPlan::default())
    }

    /// The whole study: every method's sets, the bands of `plan` (all scored in the same fused
    /// passes), then the intervals and permutation tests.
    pub fn run_with(&self, sets: &[(PathBuf, NeuronSets)], mode: Mode, plan: &StudyPlan) -> anyhow::Result<Ablation> {
        let scored = self.score_plan(sets, mode, plan)?;
        self.assemble(sets, mode, plan, scored)
    }

    /// The letter logits of every job of the study, in fused passes: each method's sets, then
    /// each band of `plan` ([job][draw · groups + set][example][option]).
    pub fn score_plan(
        &self,
        sets: &[(PathBuf, NeuronSets)],
        mode: Mode,
        plan: &StudyPlan,
    ) -> anyhow::Result<Vec<Vec<Vec<Vec<f32>>>>> {
        for (path, s) in sets {
            self.check(s, path)?;
        }
        let banded = plan.banded(sets);
        let all: Vec<&NeuronSets> = sets.iter().map(|(_, s)| s).chain(banded.iter().map(|(_, _, s)| s)).collect();
        self.score_sets(&all, mode)
    }

    /// The study's results from the logits `score_plan` returned (on these rows: cross-fitting
    /// joins two folds' logits before this).
    pub fn assemble(
        &self,
        sets: &[(PathBuf, NeuronSets)],
        mode: Mode,
        plan: &StudyPlan,
        scored: Vec<Vec<Vec<Vec<f32>>>>,
    ) -> anyhow::Result<Ablation> {
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
            significance: None,
            layer_band: None,
            bands: BTreeMap::new(),
            evaluation: None,
        };
        let mut extras = ReportExtras {
            mode: mode.name(),
            examples_per_group: (0..g_n).map(|g| self.examples.iter().filter(|(h, _)| *h == g).count()).collect(),
            labelled_per_group: labelled_per_group(self.examples, g_n),
            layer_width: self.model.width(),
            weighting: self.weighting.clone(),
            ..Default::default()
        };
        let mut logits = AblatedLogits {
            example_ids: self.examples.iter().map(|(_, e)| e.id.clone()).collect(),
            example_group: self.examples.iter().map(|(g, _)| *g).collect(),
            groups: self.groups.to_vec(),
            base: self.base_logits.clone(),
            methods: BTreeMap::new(),
        };
        let banded = plan.banded(sets);
        anyhow::ensure!(scored.len() == sets.len() + banded.len(), "one logit block per job of the study");
        let mut scored = scored.into_iter();
        let mut cells = BTreeMap::new();
        for ((_, s), method_logits) in sets.iter().zip(scored.by_ref()) {
            let run = self.summarize(s, method_logits);
            summary.methods.insert(s.method.clone(), run.summary);
            extras.neurons_per_layer_per_group.insert(s.method.clone(), run.per_group);
            logits.methods.insert(s.method.clone(), run.logits);
            cells.insert(s.method.clone(), (run.cells, run.draws));
        }
        for ((method, layers, s), band_logits) in banded.iter().zip(scored) {
            let m = self.summarize(s, band_logits).summary;
            let sizes = s.sets.iter().map(|g| g.neurons.len()).sum::<usize>();
            summary.bands.entry(method.clone()).or_default().push(BandResult {
                layers: *layers,
                mean_set_size: sizes as f64 / s.sets.len().max(1) as f64,
                mean_self_delta: m.mean_self_delta,
                mean_cross_delta: m.mean_cross_delta,
                gap: m.gap,
            });
        }
        if let Some(sig) = &plan.significance {
            summary.significance = Some(self.significance(&mut summary, &cells, sets, sig));
        }
        Ok(Ablation { summary, extras, logits })
    }

    /// Bootstrap intervals for every method and, against the random control when it ran,
    /// each other method's permutation p-value.
    fn significance(
        &self,
        summary: &mut Summary,
        cells: &BTreeMap<String, (Cells, Vec<Cells>)>,
        sets: &[(PathBuf, NeuronSets)],
        o: &SignificanceOptions,
    ) -> Significance {
        let control = Method::Random.name();
        let mut permutations = 0;
        for (name, m) in summary.methods.iter_mut() {
            let (c, _) = &cells[name];
            let i = bootstrap(c, o.resamples, o.level, o.seed);
            let by_name = |v: &[[f64; 2]]| -> BTreeMap<String, [f64; 2]> {
                self.groups.iter().cloned().zip(v.iter().copied()).collect()
            };
            m.intervals = Some(Intervals {
                self_delta: by_name(&i.self_delta),
                cross_delta: by_name(&i.cross_delta),
                mean_self_delta: i.mean_self,
                mean_cross_delta: i.mean_cross,
                gap: i.gap,
            });
            if let Some((_, draws)) = cells.get(control).filter(|_| name != control) {
                let (p, drawn) = gap_permutation_p(c, draws, o.permutations, o.seed);
                m.p_gap_vs_random = Some(p);
                permutations = permutations.max(drawn);
            }
        }
        let random_draws = sets.iter().find(|(_, s)| s.method == control).map_or(0, |(_, s)| s.draws().len());
        Significance { level: o.level, resamples: o.resamples, permutations, seed: o.seed, random_draws }
    }
}

/// What a study runs beyond each method's sets.
#[derive(Debug, Clone, Default)]
pub struct StudyPlan {
    /// Bands of layers [first, end) each method of `band_methods` is also ablated in alone.
    pub bands: Vec<[usize; 2]>,
    pub band_methods: Vec<String>,
    /// Intervals and permutation tests (None: neither).
    pub significance: Option<SignificanceOptions>,
}

impl StudyPlan {
    /// Each band of each band method's sets: (method, [first, end), the sets cut to it).
    pub fn banded(&self, sets: &[(PathBuf, NeuronSets)]) -> Vec<(String, [usize; 2], NeuronSets)> {
        sets.iter()
            .filter(|(_, s)| self.band_methods.contains(&s.method))
            .flat_map(|(_, s)| self.bands.iter().map(move |&[a, b]| (s.method.clone(), [a, b], s.in_band(a, b))))
            .collect()
    }
}

/// How the intervals and p-values are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignificanceOptions {
    pub resamples: usize,
    pub permutations: usize,
    pub level: f64,
    pub seed: u64,
}

impl Default for SignificanceOptions {
    fn default() -> Self {
        SignificanceOptions { resamples: 1000, permutations: 10000, level: 0.95, seed: 0 }
    }
}

/// `n` bands of near-equal width covering `layers` layers ([first, end) each); at most one
/// per layer.
pub fn equal_bands(layers: usize, n: usize) -> Vec<[usize; 2]> {
    let n = n.min(layers);
    (0..n).map(|i| [i * layers / n, (i + 1) * layers / n]).collect()
}

/// The intervention edits of one set of neurons ([layer, index]) under `mode`.
pub fn set_edits(
    neurons: &[[usize; 2]],
    width: usize,
    mode: Mode,
    pooled_mean: Option<&[f64]>,
) -> anyhow::Result<Vec<NeuronEdit>> {
    neurons
        .iter()
        .map(|&[li, i]| {
            let neuron = li * width + i;
            Ok(match mode {
                Mode::Zero => NeuronEdit { neuron, scale: 0.0, shift: 0.0 },
                Mode::Mean => NeuronEdit {
                    neuron,
                    scale: 0.0,
                    shift: pooled_mean.context("mean ablation needs statistics")?[neuron] as f32,
                },
                Mode::Scale(s) => NeuronEdit { neuron, scale: s, shift: 0.0 },
            })
        })
        .collect()
}

/// The mean of several draws' summaries, field by field (one draw: itself).
fn mean_summary(draws: &[MethodSummary]) -> MethodSummary {
    let n = draws.len() as f64;
    let mean = |f: &dyn Fn(&MethodSummary) -> f64| draws.iter().map(f).sum::<f64>() / n;
    let grid = |f: &dyn Fn(&MethodSummary) -> &Vec<Vec<f64>>| -> Vec<Vec<f64>> {
        let mut out = f(&draws[0]).clone();
        for (r, row) in out.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = draws.iter().map(|d| f(d)[r][c]).sum::<f64>() / n;
            }
        }
        out
    };
    let named = |f: &dyn Fn(&MethodSummary) -> &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
        f(&draws[0]).keys().map(|k| (k.clone(), draws.iter().map(|d| f(d)[k]).sum::<f64>() / n)).collect()
    };
    MethodSummary {
        self_delta: named(&|d| &d.self_delta),
        cross_delta: named(&|d| &d.cross_delta),
        mean_self_delta: mean(&|d| d.mean_self_delta),
        mean_cross_delta: mean(&|d| d.mean_cross_delta),
        gap: mean(&|d| d.gap),
        flip_rate: mean(&|d| d.flip_rate),
        matrix: grid(&|d| &d.matrix),
        kept: grid(&|d| &d.kept),
        prob_drop: grid(&|d| &d.prob_drop),
        ..draws[0].clone()
    }
}
