//! The statistics file `collect` writes and `identify`/`ablate`/`merge` read: safetensors with
//! count_pos, sum and sum_sq per group × layer × neuron, positions per group (and the prompt and
//! image tokens they came from), the exact fixed-point sums that make merging bit-identical, and
//! each example's option logits (the baseline answers, so ablation need not rerun it). The metadata travels in the header as JSON
//! under "culturelens" and is also written beside it as a readable `.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::accum::{Accumulated, TokenCounts};

pub const FORMAT: u32 = 1;
const META_KEY: &str = "culturelens";

/// What the statistics were computed from, and how far the run got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsMeta {
    pub format: u32,
    pub culturelens_version: String,
    /// As given on the command line (directory or hub id).
    pub model: String,
    /// sha256 of config.json and the weight files' names and sizes.
    pub model_fingerprint: String,
    pub architecture: String,
    pub layers: usize,
    pub width: usize,
    pub dataset: String,
    /// sha256 over the selected rows (ids, groups, text, labels, image bytes) in order.
    pub dataset_fingerprint: String,
    pub group_by: String,
    pub lang: String,
    pub position_rule: String,
    /// Token ids of the option letters A, B, … whose logits are recorded.
    #[serde(default)]
    pub option_token_ids: Vec<u32>,
    /// The split of a data set folder (None: test, or its only split).
    #[serde(default)]
    pub split: Option<String>,
    /// The image processor's (min_pixels, max_pixels), where it has them (Qwen2.5-VL).
    #[serde(default)]
    pub image_budget: Option<(usize, usize)>,
    /// "default", or the prompt template's text.
    #[serde(default = "default_prompt")]
    pub prompt_format: String,
    /// "exact" or "fast" (docs/numerics.md): runs in different modes are not merged or resumed.
    #[serde(default = "exact_precision")]
    pub precision: String,
    /// "token" (every counted position weighs the same) or "example" (every question does).
    #[serde(default = "token_weighting")]
    pub weighting: String,
    pub groups: Vec<String>,
    pub examples_per_group: Vec<usize>,
    /// Rows of the whole (unsharded) run.
    pub examples: usize,
    /// Rows per chunk: the unit of batching, checkpointing and sharding.
    pub chunk_examples: usize,
    pub max_batch_tokens: usize,
    /// (index, count); (0, 1) for a run over everything or a merge of all shards.
    pub shard: (usize, usize),
    /// Chunks of this shard done so far.
    pub chunks_done: usize,
    pub complete: bool,
}

fn exact_precision() -> String {
    "exact".into()
}

fn token_weighting() -> String {
    "token".into()
}

fn default_prompt() -> String {
    "default".into()
}

impl StatsMeta {
    /// Chunks of the whole run.
    pub fn chunks_total(&self) -> usize {
        self.examples.div_ceil(self.chunk_examples.max(1))
    }

    /// The chunk indices this shard processes, in order.
    pub fn shard_chunks(&self) -> Vec<usize> {
        (0..self.chunks_total()).filter(|c| c % self.shard.1 == self.shard.0).collect()
    }

    /// Whether `other` describes the same computation (progress aside). Option-letter ids and
    /// the image budget compare only when both files record them (older files do not).
    pub fn same_run(&self, other: &StatsMeta) -> bool {
        let ids_known = !self.option_token_ids.is_empty() && !other.option_token_ids.is_empty();
        let budget_known = self.image_budget.is_some() && other.image_budget.is_some();
        let strip = |m: &StatsMeta| StatsMeta {
            chunks_done: 0,
            complete: false,
            culturelens_version: String::new(),
            model: String::new(),
            dataset: String::new(),
            option_token_ids: if ids_known { m.option_token_ids.clone() } else { Vec::new() },
            image_budget: if budget_known { m.image_budget } else { None },
            ..m.clone()
        };
        strip(self) == strip(other)
    }
}

/// Everything in a statistics file.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsFile {
    pub meta: StatsMeta,
    pub acc: Accumulated,
    /// Row indices (into the whole run's selected rows) whose logits are below, in order.
    pub example_index: Vec<u64>,
    /// [rows][options].
    pub option_logits: Vec<Vec<f32>>,
}

fn bytes_of<T: bytemuck::Pod>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

impl StatsFile {
    /// Writes atomically (temporary file, then rename), plus the metadata as `<path>.json`.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let a = &self.acc;
        let (g, l, w) = (a.groups, a.layers, a.width);
        let n_opt = self.option_logits.first().map_or(0, |r| r.len());
        let split = |v: &[i128]| -> Vec<i64> { v.iter().flat_map(|&x| [x as u64 as i64, (x >> 64) as i64]).collect() };
        let tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
            (
                "count_pos",
                Dtype::I64,
                vec![g, l, w],
                bytes_of(&a.count_pos.iter().map(|&c| c as i64).collect::<Vec<_>>()),
            ),
            ("sum", Dtype::F64, vec![g, l, w], bytes_of(&a.sum_f64())),
            ("sum_sq", Dtype::F64, vec![g, l, w], bytes_of(&a.sum_sq_f64())),
            ("sum_fixed", Dtype::I64, vec![g, l, w, 2], bytes_of(&split(&a.sum))),
            ("sum_sq_fixed", Dtype::I64, vec![g, l, w, 2], bytes_of(&split(&a.sum_sq))),
            ("positions", Dtype::I64, vec![g], bytes_of(&a.positions.iter().map(|&c| c as i64).collect::<Vec<_>>())),
            (
                "example_index",
                Dtype::I64,
                vec![self.example_index.len()],
                bytes_of(&self.example_index.iter().map(|&c| c as i64).collect::<Vec<_>>()),
            ),
            (
                "option_logits",
                Dtype::F32,
                vec![self.option_logits.len(), n_opt],
                bytes_of(&self.option_logits.concat()),
            ),
        ];
        let mut tensors = tensors;
        if let Some(c) = &a.count_pos_weighted {
            tensors.push(("count_pos_weighted_fixed", Dtype::I64, vec![g, l, w, 2], bytes_of(&split(c))));
        }
        if let Some(c) = &a.token_counts {
            let i64s = |v: &[u64]| bytes_of(&v.iter().map(|&c| c as i64).collect::<Vec<_>>());
            tensors.push(("tokens", Dtype::I64, vec![g], i64s(&c.tokens)));
            tensors.push(("image_tokens", Dtype::I64, vec![g], i64s(&c.image_tokens)));
        }
        let views: Vec<(&str, TensorView<'_>)> = tensors
            .iter()
            .map(|(name, dt, shape, bytes)| Ok((*name, TensorView::new(*dt, shape.clone(), bytes)?)))
            .collect::<Result<_, safetensors::SafeTensorError>>()?;
        let meta_json = serde_json::to_string(&self.meta)?;
        let info = HashMap::from([(META_KEY.to_string(), meta_json)]);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = path.with_extension("safetensors.tmp");
        safetensors::serialize_to_file(views, Some(info), &tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        let json_path = json_path(path);
        std::fs::write(&json_path, serde_json::to_string_pretty(&self.meta)? + "\n")
            .with_context(|| format!("writing {}", json_path.display()))?;
        Ok(())
    }

    pub fn load(path: &Path) -> anyhow::Result<StatsFile> {
        let bytes = std::fs::read(path).with_context(|| format!("reading statistics file {}", path.display()))?;
        let bad = |why: String| anyhow::anyhow!("{}: not a culturelens statistics file: {why}", path.display());
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta_json =
            header.metadata().as_ref().and_then(|m| m.get(META_KEY)).ok_or_else(|| bad("no metadata".into()))?;
        let meta: StatsMeta = serde_json::from_str(meta_json).map_err(|e| bad(format!("metadata: {e}")))?;
        if meta.format != FORMAT {
            return Err(bad(format!("format {} (this build reads {FORMAT})", meta.format)));
        }
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let (g, l, w) = (meta.groups.len(), meta.layers, meta.width);
        let tensor = |name: &str, dtype: Dtype, shape: &[usize]| -> anyhow::Result<Vec<u8>> {
            let t = st.tensor(name).map_err(|_| bad(format!("tensor {name} is missing")))?;
            if t.dtype() != dtype || t.shape() != shape {
                return Err(bad(format!(
                    "tensor {name} is {:?} {:?}, the metadata implies {dtype:?} {shape:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data().to_vec())
        };
        let i64s =
            |b: Vec<u8>| -> Vec<i64> { b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect() };
        let join = |v: Vec<i64>| -> Vec<i128> {
            v.chunks_exact(2).map(|p| ((p[1] as i128) << 64) | (p[0] as u64 as i128)).collect()
        };
        // The metadata's sizes are only trusted once a tensor of that shape is really there: a
        // lying header must not size an allocation.
        tensor("count_pos", Dtype::I64, &[g, l, w])?;
        let mut acc = Accumulated::zeros(g, l, w);
        // Counts can be neither negative nor above their culture's positions; sums are finite.
        let counts_of = |name: &str, shape: &[usize]| -> anyhow::Result<Vec<u64>> {
            let v = i64s(tensor(name, Dtype::I64, shape)?);
            match v.iter().position(|&c| c < 0) {
                Some(i) => Err(bad(format!("tensor {name} holds a negative count ({} at element {i})", v[i]))),
                None => Ok(v.into_iter().map(|c| c as u64).collect()),
            }
        };
        acc.positions = counts_of("positions", &[g])?;
        acc.count_pos = counts_of("count_pos", &[g, l, w])?;
        if let Some(i) = acc.count_pos.iter().enumerate().position(|(i, &c)| c > acc.positions[i / (l * w).max(1)]) {
            return Err(bad(format!(
                "tensor count_pos counts {} positive activations at element {i}, more than its culture's {} positions",
                acc.count_pos[i],
                acc.positions[i / (l * w).max(1)]
            )));
        }
        for name in ["sum", "sum_sq"] {
            let v = tensor(name, Dtype::F64, &[g, l, w])?;
            if let Some(i) = v.chunks_exact(8).position(|c| !f64::from_le_bytes(c.try_into().unwrap()).is_finite()) {
                return Err(bad(format!("tensor {name} holds a non-finite value at element {i}")));
            }
        }
        acc.sum = join(i64s(tensor("sum_fixed", Dtype::I64, &[g, l, w, 2])?));
        acc.sum_sq = join(i64s(tensor("sum_sq_fixed", Dtype::I64, &[g, l, w, 2])?));
        if let Some(i) = acc.sum_sq.iter().position(|&q| q < 0) {
            return Err(bad(format!("tensor sum_sq_fixed holds a negative sum of squares at element {i}")));
        }
        // The exact sums are what is used; their readable f64 copies must say the same.
        for (name, exact, copy) in [("sum", acc.sum_f64(), "sum"), ("sum_sq", acc.sum_sq_f64(), "sum_sq")] {
            let v = tensor(copy, Dtype::F64, &[g, l, w])?;
            let f = v.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()));
            if let Some(i) = exact.iter().zip(f).position(|(e, c)| (e - c).abs() > 1e-9 * e.abs().max(1.0)) {
                return Err(bad(format!("tensor {name} disagrees with {name}_fixed at element {i}")));
            }
        }
        if meta.weighting == "example" {
            let c = join(i64s(tensor("count_pos_weighted_fixed", Dtype::I64, &[g, l, w, 2])?));
            // Each example adds a share in [0, 1].
            let over = |i: usize, v: i128| {
                v < 0 || v as f64 * 2f64.powi(-72) > acc.positions[i / (l * w).max(1)] as f64 + 1e-6
            };
            if let Some(i) = c.iter().enumerate().position(|(i, &v)| over(i, v)) {
                return Err(bad(format!("tensor count_pos_weighted_fixed at element {i} is outside [0, examples]")));
            }
            acc.count_pos_weighted = Some(c);
        } else if meta.weighting != "token" {
            return Err(bad(format!("weighting {:?} (expected token or example)", meta.weighting)));
        }
        // Files written before these counts existed have neither.
        acc.token_counts = if st.names().contains(&"tokens") {
            Some(TokenCounts { tokens: counts_of("tokens", &[g])?, image_tokens: counts_of("image_tokens", &[g])? })
        } else {
            None
        };
        let idx = st.tensor("example_index").map_err(|_| bad("tensor example_index is missing".into()))?;
        let rows = idx.shape().first().copied().unwrap_or(0);
        let example_index: Vec<u64> =
            i64s(tensor("example_index", Dtype::I64, &[rows])?).into_iter().map(|c| c as u64).collect();
        let lg = st.tensor("option_logits").map_err(|_| bad("tensor option_logits is missing".into()))?;
        let n_opt = lg.shape().get(1).copied().unwrap_or(0);
        let flat: Vec<f32> = tensor("option_logits", Dtype::F32, &[rows, n_opt])?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let option_logits =
            if n_opt == 0 { vec![Vec::new(); rows] } else { flat.chunks(n_opt).map(|c| c.to_vec()).collect() };
        Ok(StatsFile { meta, acc, example_index, option_logits })
    }

    /// Checks that these statistics belong to this model: its architecture, `layers` × `width`
    /// neurons and fingerprint.
    pub fn check_model(
        &self,
        path: &Path,
        fingerprint: &str,
        architecture: &str,
        layers: usize,
        width: usize,
    ) -> anyhow::Result<()> {
        if self.meta.architecture != architecture {
            anyhow::bail!(
                "{}: statistics of a {} model ({}), the model is a {architecture}",
                path.display(),
                self.meta.architecture,
                self.meta.model
            );
        }
        if (self.meta.layers, self.meta.width) != (layers, width) {
            anyhow::bail!(
                "{}: statistics are for {} layers x {} neurons, the model has {layers} x {width}",
                path.display(),
                self.meta.layers,
                self.meta.width
            );
        }
        if self.meta.model_fingerprint != fingerprint {
            anyhow::bail!(
                "{}: statistics were collected from a different model ({}; fingerprint differs)",
                path.display(),
                self.meta.model
            );
        }
        Ok(())
    }
}

/// `stats.safetensors` → `stats.json`.
pub fn json_path(path: &Path) -> PathBuf {
    path.with_extension("json")
}

/// A statistics path given as a file or as the directory `collect` wrote.
pub fn resolve(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("stats.safetensors")
    } else {
        path.to_path_buf()
    }
}
