//! `ablated_logits.safetensors`: every example's option-letter logits at baseline and under each
//! culture's set of each method, for per-example analysis (which answers flip, and by how much)
//! and for checking a run against a reference example by example.
//!
//! Tensors: `base` f32 [examples, options]; `<method>` f32 [sets, examples, options] (set s =
//! the neurons of culture s; for the random control, set d · cultures + s = draw d of culture
//! s); `example_group` i64 [examples]. Metadata: `example_ids` and
//! `groups`, JSON lists.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AblatedLogits {
    pub example_ids: Vec<String>,
    /// Culture index of each example.
    pub example_group: Vec<usize>,
    pub groups: Vec<String>,
    /// [examples][options].
    pub base: Vec<Vec<f32>>,
    /// method → [set][examples][options].
    pub methods: BTreeMap<String, Vec<Vec<Vec<f32>>>>,
}

fn f32_bytes(rows: impl Iterator<Item = f32>) -> Vec<u8> {
    rows.flat_map(f32::to_le_bytes).collect()
}

impl AblatedLogits {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("ablated_logits.safetensors")
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let e = self.base.len();
        let o = self.base.first().map_or(0, Vec::len);
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = vec![
            ("base".into(), Dtype::F32, vec![e, o], f32_bytes(self.base.iter().flatten().copied())),
            (
                "example_group".into(),
                Dtype::I64,
                vec![e],
                self.example_group.iter().flat_map(|&g| (g as i64).to_le_bytes()).collect(),
            ),
        ];
        for (m, sets) in &self.methods {
            let bytes = f32_bytes(sets.iter().flatten().flatten().copied());
            owned.push((m.clone(), Dtype::F32, vec![sets.len(), e, o], bytes));
        }
        let views: Vec<(&str, TensorView<'_>)> = owned
            .iter()
            .map(|(n, dt, shape, b)| Ok((n.as_str(), TensorView::new(*dt, shape.clone(), b)?)))
            .collect::<Result<_, safetensors::SafeTensorError>>()?;
        let info = HashMap::from([
            ("example_ids".to_string(), serde_json::to_string(&self.example_ids)?),
            ("groups".to_string(), serde_json::to_string(&self.groups)?),
        ]);
        let path = Self::path(dir);
        safetensors::serialize_to_file(views, Some(info), &path)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    pub fn load(path: &Path) -> anyhow::Result<AblatedLogits> {
        let p = if path.is_dir() { Self::path(path) } else { path.to_path_buf() };
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        let bad = |why: String| anyhow::anyhow!("{}: not a culturelens ablated-logits file: {why}", p.display());
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let list = |key: &str| -> anyhow::Result<Vec<String>> {
            serde_json::from_str(meta.get(key).ok_or_else(|| bad(format!("no {key}")))?)
                .map_err(|e| bad(format!("{key}: {e}")))
        };
        let (example_ids, groups) = (list("example_ids")?, list("groups")?);
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let floats = |name: &str| -> anyhow::Result<(Vec<usize>, Vec<f32>)> {
            let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
            anyhow::ensure!(t.dtype() == Dtype::F32, bad(format!("{name} is {:?}, not F32", t.dtype())));
            let v = t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
            Ok((t.shape().to_vec(), v))
        };
        let (shape, base) = floats("base")?;
        let &[e, o] = shape.as_slice() else { return Err(bad(format!("base is {shape:?}, not [examples, options]"))) };
        anyhow::ensure!(e == example_ids.len(), bad(format!("{e} rows for {} example ids", example_ids.len())));
        let rows = |v: &[f32]| -> Vec<Vec<f32>> { v.chunks(o.max(1)).map(<[f32]>::to_vec).collect() };
        let g = st.tensor("example_group").map_err(|e| bad(format!("example_group: {e}")))?;
        anyhow::ensure!(
            g.dtype() == Dtype::I64 && g.shape() == [e],
            bad(format!("example_group is {:?} {:?}, not I64 [{e}]", g.dtype(), g.shape()))
        );
        let example_group: Vec<usize> =
            g.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as usize).collect();
        if let Some(bad_group) = example_group.iter().find(|&&x| x >= groups.len()) {
            return Err(bad(format!("example_group holds {bad_group}, past the {} groups", groups.len())));
        }
        let mut methods = BTreeMap::new();
        for name in st.names() {
            if name == "base" || name == "example_group" {
                continue;
            }
            let (shape, v) = floats(name)?;
            // One set per culture, or per culture and draw (the random control).
            let sets = shape.first().copied().unwrap_or(0);
            anyhow::ensure!(
                shape.len() == 3 && shape[1..] == [e, o] && sets > 0 && sets % groups.len().max(1) == 0,
                bad(format!("{name} is {shape:?}, not [draws · {} cultures, {e} examples, {o} options]", groups.len()))
            );
            methods.insert(name.to_string(), v.chunks((e * o).max(1)).take(sets).map(rows).collect());
        }
        Ok(AblatedLogits { example_ids, example_group, groups, base: rows(&base), methods })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(sets: usize) -> AblatedLogits {
        let row = |k: usize| vec![k as f32, 0.5, -1.0];
        AblatedLogits {
            example_ids: vec!["a".into(), "b".into()],
            example_group: vec![0, 1],
            groups: vec!["X".into(), "Y".into()],
            base: vec![row(0), row(1)],
            methods: BTreeMap::from([
                ("cas".to_string(), (0..2).map(|s| vec![row(s), row(s + 1)]).collect()),
                ("random".to_string(), (0..sets).map(|s| vec![row(10 + s), row(s)]).collect()),
            ]),
        }
    }

    #[test]
    fn every_draw_of_the_random_control_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        // Two draws of two cultures' sets.
        let want = logits(4);
        want.save(dir.path()).unwrap();
        assert_eq!(AblatedLogits::load(dir.path()).unwrap(), want);
        // Three sets for two cultures is no whole number of draws.
        logits(3).save(dir.path()).unwrap();
        let e = AblatedLogits::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("random is [3, 2, 3]"), "{e}");
    }
}
