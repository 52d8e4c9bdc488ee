//! `pipeline`: collect → identify → ablate → report in one process, the model loaded once.
//! Layout of OUT: stats/ (statistics), neurons/ (sets and masks per method), ablation.json,
//! and the report itself (summary.json, report.md, report.html, CSVs, figures/) at the top.

use std::path::PathBuf;
use std::sync::Arc;

use super::ablate::{ablate_loaded, load_neuron_sets, AblateOptions, Mode};
use super::collect::{collect_loaded, CollectOptions, MIN_CHECKPOINT_SECONDS};
use super::data::DataOptions;
use super::identify::{identify, IdentifyOptions, KChoice};
use super::model::{options_per_row, CultureModel};
use crate::eval::mc::PositionRule;
use crate::gpu::Gpu;
use crate::neurons::Method;
use crate::report::{write_report, Summary};

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
    pub progress: bool,
}

pub fn pipeline(gpu: &Arc<Gpu>, o: &PipelineOptions) -> anyhow::Result<Summary> {
    let sel = o.data.load()?;
    let model = CultureModel::load_with(gpu, &o.model, options_per_row(&sel.grouped.examples), &o.data.inputs)?;
    let stats_dir = o.out.join("stats");
    let neurons_dir = o.out.join("neurons");
    let step = |s: &str| {
        if o.progress {
            eprintln!("{s}");
        }
    };
    step("collecting statistics");
    let stats = collect_loaded(
        gpu,
        &model,
        &sel,
        &CollectOptions {
            model: o.model.clone(),
            data: o.data.clone(),
            rule: o.rule,
            out: stats_dir,
            chunk_examples: o.chunk_examples,
            min_checkpoint_seconds: MIN_CHECKPOINT_SECONDS,
            max_batch_tokens: o.max_batch_tokens,
            shard: (0, 1),
            progress: o.progress,
        },
    )?;
    step("identifying neurons");
    identify(&IdentifyOptions {
        stats: stats.clone(),
        methods: o.methods.clone(),
        k: o.k,
        lape_top_rate: o.lape_top_rate,
        out: neurons_dir.clone(),
    })?;
    step("ablating");
    let sets = load_neuron_sets(&neurons_dir, Some(&o.methods))?;
    let ablation = ablate_loaded(
        &model,
        &sel,
        &AblateOptions {
            model: o.model.clone(),
            data: o.data.clone(),
            neurons: neurons_dir,
            methods: Some(o.methods.clone()),
            mode: o.mode,
            stats: Some(stats),
            max_batch_tokens: o.max_batch_tokens,
            max_fused_tokens: o.max_fused_tokens,
            out: o.out.clone(),
            progress: o.progress,
        },
        &sets,
    )?;
    ablation.save(&o.out)?;
    write_report(&o.out, &ablation.summary, &ablation.extras)?;
    Ok(ablation.summary)
}
