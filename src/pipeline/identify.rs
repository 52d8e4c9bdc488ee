//! `identify`: each culture's neuron set per method from collected statistics, written as JSON
//! ([layer, index] lists with their scores) and as 0/1 masks in safetensors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use crate::neurons::methods::{cas_scores, k_from_fraction, lap_scores, lape, mad_scores, select, GroupStats, Method};
use crate::neurons::random_control::random_like;
use crate::neurons::stats_file::{resolve, StatsFile};

/// One k for every method and culture (docs/methods.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KChoice {
    Count(usize),
    /// Fraction of all L·I LM neurons.
    Fraction(f64),
}

impl KChoice {
    pub fn resolve(self, neurons: usize) -> anyhow::Result<usize> {
        match self {
            KChoice::Count(k) if k == 0 || k > neurons => {
                anyhow::bail!("--k {k}: must be between 1 and the model's {neurons} LM neurons")
            }
            KChoice::Count(k) => Ok(k),
            KChoice::Fraction(f) if !(f > 0.0 && f <= 1.0) => anyhow::bail!("--k-frac {f}: must be in (0, 1]"),
            KChoice::Fraction(f) => Ok(k_from_fraction(neurons, f)),
        }
    }
}

pub fn parse_method(s: &str) -> anyhow::Result<Vec<Method>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        match part {
            "all" => out.extend(Method::ALL),
            _ => out.push(Method::EVERY.into_iter().find(|m| m.name() == part).ok_or_else(|| {
                anyhow::anyhow!("method {part:?}: expected cas, lape, lape-tang, lap, mad, random or all")
            })?),
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|m| seen.insert(*m));
    Ok(out)
}

pub struct IdentifyOptions {
    pub stats: PathBuf,
    pub methods: Vec<Method>,
    pub k: KChoice,
    /// LAPE's kept share of all neurons (1%).
    pub lape_top_rate: f64,
    pub random: RandomControl,
    pub out: PathBuf,
}

/// How the random control draws its sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomControl {
    /// Sets drawn per culture; the ablation averages over them.
    pub draws: usize,
    pub seed: u64,
}

impl Default for RandomControl {
    fn default() -> Self {
        RandomControl { draws: 3, seed: 0 }
    }
}

/// One culture's selected neurons, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSet {
    pub group: String,
    /// [layer, index in the layer].
    pub neurons: Vec<[usize; 2]>,
    /// The method's score of each (LAPE: entropy, lower is more specific; random: none).
    pub scores: Vec<f64>,
}

/// `neurons_<method>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeuronSets {
    pub method: String,
    pub k: usize,
    pub stats: String,
    pub model: String,
    /// HF class of the model (empty in files written before it was recorded).
    #[serde(default)]
    pub architecture: String,
    pub model_fingerprint: String,
    pub dataset_fingerprint: String,
    pub position_rule: String,
    pub layers: usize,
    pub width: usize,
    pub groups: Vec<String>,
    pub sets: Vec<GroupSet>,
    /// The random control's further draws (`sets` is the first), each one set per group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_draws: Vec<Vec<GroupSet>>,
    /// The random control's seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl NeuronSets {
    pub fn path(dir: &Path, method: Method) -> PathBuf {
        dir.join(format!("neurons_{}.json", method.name()))
    }

    pub fn load(path: &Path) -> anyhow::Result<NeuronSets> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading neuron sets {}", path.display()))?;
        let s: NeuronSets = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a culturelens neuron-set file", path.display()))?;
        for (d, draw) in s.draws().into_iter().enumerate() {
            if draw.len() != s.groups.len() {
                anyhow::bail!("{}: draw {d} holds {} sets for {} groups", path.display(), draw.len(), s.groups.len());
            }
        }
        for set in s.draws().into_iter().flatten() {
            if let Some(n) = set.neurons.iter().find(|[l, i]| *l >= s.layers || *i >= s.width) {
                anyhow::bail!(
                    "{}: group {}: neuron {n:?} is outside {} x {}",
                    path.display(),
                    set.group,
                    s.layers,
                    s.width
                );
            }
        }
        Ok(s)
    }

    /// Checks that these sets were identified on the model `architecture` / `fingerprint` of
    /// `layers` x `width` neurons.
    pub fn check_model(
        &self,
        path: &Path,
        architecture: &str,
        fingerprint: &str,
        layers: usize,
        width: usize,
    ) -> anyhow::Result<()> {
        // Files written before the architecture was recorded leave it empty.
        if !self.architecture.is_empty() && self.architecture != architecture {
            anyhow::bail!(
                "{}: neuron sets of a {} model ({}), the model is a {architecture}",
                path.display(),
                self.architecture,
                self.model
            );
        }
        if self.model_fingerprint != fingerprint {
            anyhow::bail!("{}: neuron sets were identified on a different model ({})", path.display(), self.model);
        }
        if (self.layers, self.width) != (layers, width) {
            anyhow::bail!(
                "{}: neuron sets are for {} x {} neurons, the model has {layers} x {width}",
                path.display(),
                self.layers,
                self.width
            );
        }
        Ok(())
    }

    /// The set of culture `name`, with the cultures there are when it is not one of them.
    pub fn culture(&self, name: &str, path: &Path) -> anyhow::Result<(usize, &GroupSet)> {
        self.sets.iter().enumerate().find(|(_, s)| s.group == name).ok_or_else(|| {
            anyhow::anyhow!("{}: no culture {name:?}; the sets are for {}", path.display(), self.groups.join(", "))
        })
    }

    /// Every draw of sets, one set per group each: `sets` alone except for the random control.
    pub fn draws(&self) -> Vec<&[GroupSet]> {
        std::iter::once(&self.sets[..]).chain(self.extra_draws.iter().map(|d| &d[..])).collect()
    }

    /// The same sets cut to layers [first, end) (every draw; scores kept with their neurons).
    pub fn in_band(&self, first: usize, end: usize) -> NeuronSets {
        let cut = |sets: &[GroupSet]| -> Vec<GroupSet> {
            sets.iter()
                .map(|s| {
                    let keep: Vec<usize> =
                        (0..s.neurons.len()).filter(|&i| (first..end).contains(&s.neurons[i][0])).collect();
                    GroupSet {
                        group: s.group.clone(),
                        neurons: keep.iter().map(|&i| s.neurons[i]).collect(),
                        scores: keep.iter().filter_map(|&i| s.scores.get(i).copied()).collect(),
                    }
                })
                .collect()
        };
        NeuronSets {
            sets: cut(&self.sets),
            extra_draws: self.extra_draws.iter().map(|d| cut(d)).collect(),
            ..self.clone()
        }
    }

    /// Selected neurons per layer, per group (of the first draw: every draw has the same).
    pub fn per_layer(&self) -> Vec<Vec<usize>> {
        self.sets
            .iter()
            .map(|s| {
                let mut v = vec![0; self.layers];
                for [l, _] in &s.neurons {
                    v[*l] += 1;
                }
                v
            })
            .collect()
    }
}

fn method_scores(s: &GroupStats, method: Method, g: usize, lape_entropy: &[f64]) -> Vec<f64> {
    match method {
        Method::Cas => cas_scores(s, g),
        Method::Mad => mad_scores(s, g),
        Method::Lap => lap_scores(s, g),
        Method::Lape | Method::LapeTang => lape_entropy.to_vec(),
        Method::Random => Vec::new(),
    }
}

/// Neuron sets of one method from statistics already loaded.
pub fn neuron_sets(
    stats: &StatsFile,
    stats_path: &Path,
    method: Method,
    k: usize,
    lape_top_rate: f64,
    random: RandomControl,
) -> NeuronSets {
    let s = stats.acc.group_stats();
    let entropy =
        if matches!(method, Method::Lape | Method::LapeTang) { lape(&s, lape_top_rate).entropy } else { Vec::new() };
    let chosen = select(&s, method, k, lape_top_rate);
    let w = s.width;
    let group_sets = |chosen: &[Vec<usize>]| -> Vec<GroupSet> {
        chosen
            .iter()
            .enumerate()
            .map(|(g, idx)| {
                let scores = method_scores(&s, method, g, &entropy);
                GroupSet {
                    group: stats.meta.groups[g].clone(),
                    neurons: idx.iter().map(|&n| [n / w, n % w]).collect(),
                    scores: idx.iter().filter_map(|&n| scores.get(n).copied()).collect(),
                }
            })
            .collect()
    };
    let (sets, extra_draws, seed) = if method == Method::Random {
        let mut draws = random_like(&chosen, s.layers, w, random.draws.max(1), random.seed).into_iter();
        let first = group_sets(&draws.next().expect("at least one draw"));
        (first, draws.map(|d| group_sets(&d)).collect(), Some(random.seed))
    } else {
        (group_sets(&chosen), Vec::new(), None)
    };
    NeuronSets {
        method: method.name().to_string(),
        k,
        stats: stats_path.display().to_string(),
        model: stats.meta.model.clone(),
        architecture: stats.meta.architecture.clone(),
        model_fingerprint: stats.meta.model_fingerprint.clone(),
        dataset_fingerprint: stats.meta.dataset_fingerprint.clone(),
        position_rule: stats.meta.position_rule.clone(),
        layers: s.layers,
        width: s.width,
        groups: stats.meta.groups.clone(),
        sets,
        extra_draws,
        seed,
    }
}

/// Loads statistics and checks they are complete, unsharded and self-consistent.
pub fn load_stats(path: &Path) -> anyhow::Result<(PathBuf, StatsFile)> {
    let path = resolve(path);
    let stats = StatsFile::load(&path)?;
    if !stats.meta.complete {
        anyhow::bail!(
            "{}: statistics are not complete (the collect run was interrupted; rerun it to resume)",
            path.display()
        );
    }
    if stats.meta.shard.1 != 1 {
        anyhow::bail!(
            "{}: shard {}/{} only; `culturelens merge` the shards first",
            path.display(),
            stats.meta.shard.0,
            stats.meta.shard.1
        );
    }
    if let Some(g) = stats.acc.positions.iter().position(|&p| p == 0) {
        anyhow::bail!("{}: group {} has no counted positions", path.display(), stats.meta.groups[g]);
    }
    Ok((path, stats))
}

pub fn identify(o: &IdentifyOptions) -> anyhow::Result<Vec<PathBuf>> {
    let (path, stats) = load_stats(&o.stats)?;
    let k = o.k.resolve(stats.meta.layers * stats.meta.width)?;
    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let mut written = Vec::new();
    for &m in &o.methods {
        let sets = neuron_sets(&stats, &path, m, k, o.lape_top_rate, o.random);
        let json = NeuronSets::path(&o.out, m);
        std::fs::write(&json, serde_json::to_string_pretty(&sets)? + "\n")
            .with_context(|| format!("writing {}", json.display()))?;
        written.push(json);
        written.push(write_mask(&o.out, &sets)?);
    }
    Ok(written)
}

/// `masks_<method>.safetensors`: "mask" u8 [groups, layers, width], 1 = selected.
fn write_mask(dir: &Path, sets: &NeuronSets) -> anyhow::Result<PathBuf> {
    let (l, w) = (sets.layers, sets.width);
    let mut mask = vec![0u8; sets.sets.len() * l * w];
    for (g, s) in sets.sets.iter().enumerate() {
        for [li, i] in &s.neurons {
            mask[g * l * w + li * w + i] = 1;
        }
    }
    let view = TensorView::new(Dtype::U8, vec![sets.sets.len(), l, w], &mask)?;
    let info = HashMap::from([("groups".to_string(), serde_json::to_string(&sets.groups)?)]);
    let path = dir.join(format!("masks_{}.safetensors", sets.method));
    safetensors::serialize_to_file([("mask", view)], Some(info), &path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
