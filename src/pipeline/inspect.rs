//! `inspect`: what the selected neurons are. For each method's set of each culture, every
//! neuron's mean activation and activation probability on every culture (from the statistics),
//! and the examples it fires on most (a pass over the data that keeps each example's own mean
//! activation); and how much the sets overlap, between methods and between cultures (Jaccard).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::ablate::{check_sets, load_neuron_sets, model_stats};
use super::collect::progress_bar;
use super::data::{DataOptions, Selected};
use super::identify::NeuronSets;
use super::model::{options_per_row, CultureModel};
use crate::eval::mc::PositionRule;
use crate::eval::score::Prepared;
use crate::gpu::Gpu;
use crate::models::NeuronStats;
use crate::neurons::Method;
use crate::ops::swiglu::{acc_sums, ACC_WORDS};
use crate::report::{Inspection, NeuronProfile, SetProfile, TopExample};

pub struct InspectOptions {
    pub model: String,
    pub data: DataOptions,
    /// The directory `identify` wrote.
    pub neurons: PathBuf,
    /// None: every method whose sets are there.
    pub methods: Option<Vec<Method>>,
    /// The statistics (default: those the sets came from).
    pub stats: Option<PathBuf>,
    /// Top activating examples kept per neuron.
    pub top: usize,
    pub max_batch_tokens: usize,
    pub out: PathBuf,
    pub progress: bool,
}

/// |a ∩ b| / |a ∪ b| (1 when both are empty).
pub fn jaccard<T: Ord>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

fn neuron_set(s: &super::identify::GroupSet) -> BTreeSet<[usize; 2]> {
    s.neurons.iter().copied().collect()
}

/// Jaccard indices of neuron sets.
pub struct Overlaps {
    /// Culture -> [method][method].
    pub between_methods: BTreeMap<String, Vec<Vec<f64>>>,
    /// Method -> [culture][culture].
    pub between_cultures: BTreeMap<String, Vec<Vec<f64>>>,
}

/// Jaccard of every pair of methods' sets, per culture; and of every pair of cultures' sets,
/// per method.
pub fn overlaps(sets: &[&NeuronSets]) -> Overlaps {
    let mut between_methods = BTreeMap::new();
    if let Some(first) = sets.first() {
        for (g, group) in first.groups.iter().enumerate() {
            let m: Vec<Vec<f64>> = sets
                .iter()
                .map(|a| sets.iter().map(|b| jaccard(&neuron_set(&a.sets[g]), &neuron_set(&b.sets[g]))).collect())
                .collect();
            between_methods.insert(group.clone(), m);
        }
    }
    let between_cultures = sets
        .iter()
        .map(|s| {
            let m = s.sets.iter().map(|a| s.sets.iter().map(|b| jaccard(&neuron_set(a), &neuron_set(b))).collect());
            (s.method.clone(), m.collect())
        })
        .collect();
    Overlaps { between_methods, between_cultures }
}

/// Each example's mean activation of each of `neurons` (flat indices) over its counted
/// positions ([example][neuron]; 0 where none count).
pub fn example_means(
    model: &CultureModel,
    prepared: &[Prepared],
    neurons: &[usize],
    rule: PositionRule,
    max_batch_tokens: usize,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<Vec<Vec<f64>>> {
    let per = model.layers() * model.width();
    let slots = CultureModel::slots_for(prepared, max_batch_tokens);
    let stats = NeuronStats::new(model.vlm.decoder().gpu(), slots, model.layers(), model.width())?;
    let mut out = Vec::with_capacity(prepared.len());
    model.score_per_example(prepared, &stats, rule, max_batch_tokens, |rows, scored, words| {
        for slot in 0..rows.len() {
            let n = scored.positions.get(slot).copied().unwrap_or(0).max(1) as f64;
            let sum = |j: usize| acc_sums(&words[(slot * per + j) * ACC_WORDS..][..ACC_WORDS]).0;
            out.push(neurons.iter().map(|&j| sum(j) / n).collect());
        }
        progress(rows.end, prepared.len());
        Ok(())
    })?;
    Ok(out)
}

/// The `top` examples of column `j` of `means`, highest first, ties to the earlier row.
pub fn top_rows(means: &[Vec<f64>], j: usize, top: usize) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..means.len()).collect();
    rows.sort_by(|&a, &b| means[b][j].total_cmp(&means[a][j]).then(a.cmp(&b)));
    rows.truncate(top);
    rows
}

pub fn inspect(gpu: &std::sync::Arc<Gpu>, o: &InspectOptions) -> anyhow::Result<Inspection> {
    let sets = load_neuron_sets(&o.neurons, o.methods.as_deref())?;
    let sel = o.data.load()?;
    let model = CultureModel::load_with(gpu, &o.model, options_per_row(&sel.grouped.examples), &o.data.inputs)?;
    let r = inspect_loaded(&model, &sel, o, &sets)?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let json = o.out.join("inspect.json");
    std::fs::write(&json, serde_json::to_string_pretty(&r)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    crate::report::write_inspection(&o.out, &r, &|row| thumbnail(&sel, row))?;
    Ok(r)
}

/// A row's image as a small PNG (None without one, or when it does not decode).
fn thumbnail(sel: &Selected, row: usize) -> Option<Vec<u8>> {
    let bytes = sel.grouped.examples.get(row)?.1.image.as_ref()?;
    let img = image::load_from_memory(bytes).ok()?.thumbnail(96, 96);
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).ok()?;
    Some(png.into_inner())
}

/// `inspect` with the model, rows and sets loaded; writes nothing.
pub fn inspect_loaded(
    model: &CultureModel,
    sel: &Selected,
    o: &InspectOptions,
    sets: &[(PathBuf, NeuronSets)],
) -> anyhow::Result<Inspection> {
    let groups = &sel.grouped.names;
    for (path, s) in sets {
        check_sets(model, groups, s, path)?;
    }
    let first = &sets.first().context("no neuron sets given")?.1;
    let stats_path = o.stats.clone().unwrap_or_else(|| PathBuf::from(&first.stats));
    let stats = model_stats(&stats_path, model, true)
        .with_context(|| format!("inspect reads each neuron's μ and p from the statistics ({})", stats_path.display()))?
        .context("statistics required")?;
    if stats.meta.groups != *groups {
        anyhow::bail!(
            "{}: statistics are for groups {:?}, the data selects {:?}",
            stats_path.display(),
            stats.meta.groups,
            groups
        );
    }
    let rule = PositionRule::parse(&stats.meta.position_rule).unwrap_or(PositionRule::All);
    let g = stats.acc.group_stats();
    let w = model.width();
    // The random control is a baseline for the overlaps, not neurons to look at.
    let profiled: Vec<&NeuronSets> =
        sets.iter().map(|(_, s)| s).filter(|s| s.method != Method::Random.name()).collect();
    let union: Vec<usize> = profiled
        .iter()
        .flat_map(|s| s.sets.iter().flat_map(|set| set.neurons.iter().map(|&[l, i]| l * w + i)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let column: BTreeMap<usize, usize> = union.iter().enumerate().map(|(c, &n)| (n, c)).collect();
    let prepared = model.prepare(&sel.grouped.examples)?;
    let bar = progress_bar(o.progress, prepared.len() as u64, 0);
    bar.set_message(format!("activations of {} neurons per example", union.len()));
    let means = example_means(model, &prepared, &union, rule, o.max_batch_tokens, |k, _| bar.set_position(k as u64))?;
    bar.finish_and_clear();
    let per_group_mean: Vec<Vec<f64>> = (0..g.groups).map(|h| g.mean(h)).collect();
    let per_group_prob: Vec<Vec<f64>> = (0..g.groups).map(|h| g.prob(h)).collect();
    let profile = |set: &super::identify::GroupSet, k: usize, [l, i]: [usize; 2]| NeuronProfile {
        layer: l,
        index: i,
        score: set.scores.get(k).copied(),
        mean: per_group_mean.iter().map(|m| m[l * w + i]).collect(),
        prob: per_group_prob.iter().map(|p| p[l * w + i]).collect(),
        top: top_rows(&means, column[&(l * w + i)], o.top)
            .into_iter()
            .map(|row| {
                let (gi, ex) = &sel.grouped.examples[row];
                TopExample {
                    row,
                    id: ex.id.clone(),
                    culture: groups[*gi].clone(),
                    question: ex.question.clone(),
                    activation: means[row][column[&(l * w + i)]],
                }
            })
            .collect(),
    };
    let methods = profiled
        .iter()
        .map(|s| {
            let sets = s
                .sets
                .iter()
                .map(|set| SetProfile {
                    culture: set.group.clone(),
                    neurons: set.neurons.iter().enumerate().map(|(k, &n)| profile(set, k, n)).collect(),
                })
                .collect();
            (s.method.clone(), sets)
        })
        .collect();
    let all: Vec<&NeuronSets> = sets.iter().map(|(_, s)| s).collect();
    let overlap = overlaps(&all);
    Ok(Inspection {
        model: model.name.clone(),
        dataset: o.data.data.clone(),
        position_rule: stats.meta.position_rule.clone(),
        groups: groups.clone(),
        methods,
        overlap_between_methods: overlap.between_methods,
        overlap_methods: all.iter().map(|s| s.method.clone()).collect(),
        overlap_between_cultures: overlap.between_cultures,
    })
}

/// Loads `inspect.json` from a directory or file.
pub fn load_inspection(path: &Path) -> anyhow::Result<Inspection> {
    let p = if path.is_dir() { path.join("inspect.json") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a culturelens inspect.json", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaccard_by_hand() {
        let a: BTreeSet<u32> = [1, 2, 3].into();
        let b: BTreeSet<u32> = [2, 3, 4, 5].into();
        // {2, 3} of {1, 2, 3, 4, 5}.
        assert_eq!(jaccard(&a, &b), 0.4);
        assert_eq!(jaccard(&a, &a), 1.0);
        assert_eq!(jaccard(&BTreeSet::<u32>::new(), &BTreeSet::new()), 1.0);
        assert_eq!(jaccard(&a, &BTreeSet::new()), 0.0);
    }

    #[test]
    fn top_rows_highest_first_ties_to_the_earlier_row() {
        let means = vec![vec![0.5, 1.0], vec![2.0, 1.0], vec![0.5, 3.0], vec![-1.0, 1.0]];
        assert_eq!(top_rows(&means, 0, 3), vec![1, 0, 2]);
        assert_eq!(top_rows(&means, 1, 2), vec![2, 0]);
        assert_eq!(top_rows(&means, 1, 10).len(), 4);
    }
}
