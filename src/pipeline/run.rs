//! `pipeline`: collect → identify → ablate → report in one process, the model loaded once.
//! Layout of OUT: stats/ (statistics), neurons/ (sets and masks per method), ablation.json,
//! and the report itself (summary.json, report.md, report.html, CSVs, figures/) at the top.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ablate::{
    load_neuron_sets, prepare_study, AblateOptions, Ablation, Mode, SignificanceOptions, Study, StudyInputs, StudyPlan,
};
use super::collect::{collect_loaded, CollectOptions, Weighting, MIN_CHECKPOINT_SECONDS};
use super::data::{DataOptions, RowSplit, Selected, SplitPart};
use super::identify::{identify, IdentifyOptions, KChoice, NeuronSets, RandomControl};
use super::model::{options_per_row, CultureModel};
use crate::eval::mc::PositionRule;
use crate::gpu::Gpu;
use crate::neurons::Method;
use crate::report::{write_report, Evaluation, Summary};

pub struct PipelineOptions {
    pub model: String,
    pub data: DataOptions,
    pub out: PathBuf,
    pub methods: Vec<Method>,
    pub k: KChoice,
    pub rule: PositionRule,
    pub mode: Mode,
    pub chunk_examples: usize,
    pub max_batch_tokens: usize,
    pub max_fused_tokens: usize,
    pub lape_top_rate: f64,
    pub random: RandomControl,
    pub bands: usize,
    pub band_methods: Vec<Method>,
    pub significance: Option<SignificanceOptions>,
    /// With `data.rows` (--eval-split): run both folds, each part identified on once and
    /// evaluated on once, and pool them.
    pub cross_fit: bool,
    /// How positions weigh in the statistics.
    pub weighting: Weighting,
    pub progress: bool,
}

pub fn pipeline(gpu: &Arc<Gpu>, o: &PipelineOptions) -> anyhow::Result<Summary> {
    let all = DataOptions { rows: None, ..o.data.clone() }.load()?;
    let model = CultureModel::load_with(gpu, &o.model, options_per_row(&all.grouped.examples), &o.data.inputs)?;
    let Some(split) = o.data.rows else {
        let fold = run_fold(gpu, &model, o, &all, &all, &o.out)?;
        return finish(o, fold.ablation);
    };
    let part = |p: SplitPart| all.part(RowSplit { part: p, ..split });
    let (identify_rows, evaluate_rows) = (part(SplitPart::Identify)?, part(SplitPart::Evaluate)?);
    let evaluation = |identify: &Selected, evaluate: &Selected| Evaluation {
        identify_fraction: split.identify_fraction,
        seed: split.seed,
        cross_fit: o.cross_fit,
        identify_rows: identify.grouped.names.iter().cloned().zip(identify.grouped.counts()).collect(),
        evaluate_rows: evaluate.grouped.names.iter().cloned().zip(evaluate.grouped.counts()).collect(),
    };
    if !o.cross_fit {
        // Each part holds its own copy of its rows (images included); the whole is not needed.
        drop(all);
        let mut fold = run_fold(gpu, &model, o, &identify_rows, &evaluate_rows, &o.out)?;
        fold.ablation.summary.evaluation = Some(evaluation(&identify_rows, &evaluate_rows));
        return finish(o, fold.ablation);
    }
    step(o, "cross-fitting, fold 1 of 2: identify on one part, evaluate on the other");
    let first = run_fold(gpu, &model, o, &identify_rows, &evaluate_rows, &o.out.join("fold-1"))?;
    step(o, "cross-fitting, fold 2 of 2: the parts swapped");
    let second = run_fold(gpu, &model, o, &evaluate_rows, &identify_rows, &o.out.join("fold-2"))?;
    let mut joined = join_folds(&model, &all, o, split, first, second)?;
    joined.summary.evaluation = Some(evaluation(&identify_rows, &evaluate_rows));
    finish(o, joined)
}

fn step(o: &PipelineOptions, s: &str) {
    if o.progress {
        eprintln!("{s}");
    }
}

/// Writes the ablation and the report at the top of OUT.
fn finish(o: &PipelineOptions, ablation: Ablation) -> anyhow::Result<Summary> {
    ablation.save(&o.out)?;
    write_report(&o.out, &ablation.summary, &ablation.extras, &[])?;
    Ok(ablation.summary)
}

/// One fold's results, with what joining it to another needs.
struct Fold {
    ablation: Ablation,
    sets: Vec<(PathBuf, NeuronSets)>,
    scored: Vec<Vec<Vec<Vec<f32>>>>,
    base_logits: Vec<Vec<f32>>,
    plan: StudyPlan,
}

/// collect on `identify` → identify → ablate on `evaluate`, in `out` (stats/, neurons/ and,
/// for a fold of a cross-fit, its own ablation.json).
fn run_fold(
    gpu: &Arc<Gpu>,
    model: &CultureModel,
    o: &PipelineOptions,
    identify_rows: &Selected,
    evaluate_rows: &Selected,
    out: &Path,
) -> anyhow::Result<Fold> {
    let (stats_dir, neurons_dir) = (out.join("stats"), out.join("neurons"));
    step(o, "collecting statistics");
    let stats = collect_loaded(
        gpu,
        model,
        identify_rows,
        &CollectOptions {
            model: o.model.clone(),
            data: o.data.clone(),
            rule: o.rule,
            out: stats_dir,
            chunk_examples: o.chunk_examples,
            min_checkpoint_seconds: MIN_CHECKPOINT_SECONDS,
            max_batch_tokens: o.max_batch_tokens,
            shard: (0, 1),
            weighting: o.weighting,
            progress: o.progress,
        },
    )?;
    step(o, "identifying neurons");
    identify(&IdentifyOptions {
        stats: stats.clone(),
        methods: o.methods.clone(),
        k: o.k,
        lape_top_rate: o.lape_top_rate,
        random: o.random,
        out: neurons_dir.clone(),
    })?;
    step(o, "ablating");
    let sets = load_neuron_sets(&neurons_dir, Some(&o.methods))?;
    let ao = AblateOptions {
        model: o.model.clone(),
        data: o.data.clone(),
        neurons: neurons_dir,
        methods: Some(o.methods.clone()),
        mode: o.mode,
        stats: Some(stats),
        max_batch_tokens: o.max_batch_tokens,
        max_fused_tokens: o.max_fused_tokens,
        layer_band: None,
        bands: o.bands,
        band_methods: o.band_methods.clone(),
        significance: o.significance,
        out: out.to_path_buf(),
        progress: o.progress,
    };
    let StudyInputs { study, sets, plan } = prepare_study(model, evaluate_rows, &ao, &sets)?;
    let started = std::time::Instant::now();
    let scored = study.score_plan(&sets, o.mode, &plan)?;
    study.report_passes(started);
    let ablation = study.assemble(&sets, o.mode, &plan, scored.clone())?;
    if out != o.out {
        ablation.save(out)?;
    }
    Ok(Fold { ablation, sets, scored, base_logits: study.base_logits, plan })
}

/// Cross-fitting: every row evaluated under the sets identified on the other part, scored as
/// one study over all rows (the matrix, intervals and tests pool both folds; set sizes and
/// layers are the first fold's).
fn join_folds(
    model: &CultureModel,
    all: &Selected,
    o: &PipelineOptions,
    split: RowSplit,
    first: Fold,
    second: Fold,
) -> anyhow::Result<Ablation> {
    // Fold 1 evaluated the evaluate part, fold 2 the identify part.
    let in_first = RowSplit { part: SplitPart::Evaluate, ..split }.mask(&all.grouped)?;
    let first_rows = in_first.iter().filter(|&&f| f).count();
    let interleave = |a: &[Vec<f32>], b: &[Vec<f32>]| -> anyhow::Result<Vec<Vec<f32>>> {
        anyhow::ensure!(
            a.len() == first_rows && b.len() == in_first.len() - first_rows,
            "cross-fitting: folds scored {} and {} rows, the split has {first_rows} and {}",
            a.len(),
            b.len(),
            in_first.len() - first_rows
        );
        let (mut a, mut b) = (a.iter(), b.iter());
        Ok(in_first.iter().filter_map(|&f| if f { a.next() } else { b.next() }).cloned().collect())
    };
    anyhow::ensure!(first.scored.len() == second.scored.len(), "cross-fitting: the folds ran different jobs");
    let scored = first
        .scored
        .iter()
        .zip(&second.scored)
        .map(|(a, b)| {
            anyhow::ensure!(a.len() == b.len(), "cross-fitting: the folds ran different sets");
            a.iter().zip(b).map(|(x, y)| interleave(x, y)).collect()
        })
        .collect::<anyhow::Result<_>>()?;
    let study = Study {
        model,
        examples: &all.grouped.examples,
        prepared: Vec::new(),
        groups: &all.grouped.names,
        dataset: o.data.data.clone(),
        position_rule: first.ablation.summary.position_rule.clone(),
        base_logits: interleave(&first.base_logits, &second.base_logits)?,
        pooled_mean: None,
        weighting: o.weighting.name().to_string(),
        max_batch_tokens: o.max_batch_tokens,
        max_fused_tokens: o.max_fused_tokens,
        progress: o.progress,
        fused: Default::default(),
    };
    let mut joined = study.assemble(&first.sets, o.mode, &first.plan, scored)?;
    joined.extras.notes.push(
        "Cross-fitted: each row was evaluated under the neuron sets identified on the other part of its culture's \
         rows; set sizes and neurons per layer are fold 1's (fold-1/ and fold-2/ hold each fold's own results)."
            .into(),
    );
    Ok(joined)
}
