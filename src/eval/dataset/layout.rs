//! Where the parquet shards of a split sit in a data set directory, in the layouts the HF hub
//! and `datasets` produce:
//!
//! | layout | split of a file |
//! |---|---|
//! | `*.parquet`, `data/*.parquet` | from the name: `test-00000-of-00002.parquet`, `test.parquet`; else none |
//! | `<split>/*.parquet`, `data/<split>/*.parquet` | the folder: `test` |
//! | `<config>/<split>/*.parquet` (the hub's converted parquet), `<config>/<split>-NNNNN-of-NNNNN.parquet` (`push_to_hub` with a config) | both: `default/test` |
//!
//! A split is chosen by name (`test`), or with its config (`default/test`) when several configs
//! have it; without a choice, `test` if there is one, else the only split. Shards are read in
//! path order.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{extension, DatasetError};

/// The split `--split` falls back to.
pub const DEFAULT_SPLIT: &str = "test";

/// How deep below the data set folder shards are looked for (`<config>/<split>/x.parquet`,
/// `data/<split>/x.parquet`).
const MAX_DEPTH: usize = 3;

/// The parquet files of one split of `dir`, in path order.
pub fn split_files(dir: &Path, split: Option<&str>) -> Result<Vec<PathBuf>, DatasetError> {
    let mut files = Vec::new();
    collect(dir, 0, &mut files)?;
    if files.is_empty() {
        return Err(DatasetError::NoShards { path: dir.to_path_buf() });
    }
    let mut splits: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f).to_path_buf();
        splits.entry(split_of(&rel)).or_default().push(f);
    }
    for v in splits.values_mut() {
        v.sort();
    }
    let found = || {
        splits
            .iter()
            .map(|(s, f)| format!("{} ({} file{})", if s.is_empty() { "unnamed" } else { s }, f.len(), plural(f.len())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let wanted = split.unwrap_or(DEFAULT_SPLIT);
    let matching: Vec<&String> =
        splits.keys().filter(|s| *s == wanted || s.rsplit('/').next() == Some(wanted)).collect();
    match (matching.as_slice(), split) {
        ([one], _) => Ok(splits[*one].clone()),
        ([_, _, ..], _) => Err(DatasetError::AmbiguousSplit {
            path: dir.to_path_buf(),
            split: wanted.to_string(),
            candidates: matching.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
        }),
        // No `test` and no choice made: a data set with a single split is that split.
        ([], None) if splits.len() == 1 => Ok(splits.into_values().next().unwrap_or_default()),
        ([], None) => Err(DatasetError::ChooseSplit { path: dir.to_path_buf(), found: found() }),
        ([], Some(s)) => Err(DatasetError::NoSplit { path: dir.to_path_buf(), split: s.to_string(), found: found() }),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Parquet files below `dir` up to MAX_DEPTH folders deep, skipping hidden folders (`.cache`,
/// `.git`, `.huggingface`).
fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), DatasetError> {
    let io = |source| DatasetError::Io { path: dir.to_path_buf(), source };
    for entry in fs::read_dir(dir).map_err(io)? {
        let p = entry.map_err(io)?.path();
        let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if p.is_dir() && depth < MAX_DEPTH && !hidden {
            collect(&p, depth + 1, out)?;
        } else if p.is_file() && extension(&p).as_deref() == Some("parquet") {
            out.push(p);
        }
    }
    Ok(())
}

/// The split a file belongs to, from its folders below the data set (a leading `data/` is
/// only a container) or, directly in it, from its name.
fn split_of(rel: &Path) -> String {
    let mut dirs: Vec<String> =
        rel.parent().map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect()).unwrap_or_default();
    if dirs.first().is_some_and(|d| d == "data") {
        dirs.remove(0);
    }
    let stem = rel.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    // `push_to_hub(config_name=…)` writes <config>/<split>-NNNNN-of-NNNNN.parquet.
    if let Some(split) = split_in_name(&stem) {
        if dirs.last() != Some(&split) {
            dirs.push(split);
        }
    }
    dirs.join("/")
}

/// The hub's shard names: `anything-00000-of-00002` → anything; a split word alone or
/// numbered: `validation`, `train-00003` → train. Other names (`part-0`, `b-00001`) carry none.
fn split_in_name(stem: &str) -> Option<String> {
    const NAMES: [&str; 5] = ["train", "test", "validation", "dev", "val"];
    if NAMES.contains(&stem) {
        return Some(stem.to_string());
    }
    let digits = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    let (name, rest) = stem.split_once('-')?;
    let of_n = rest.split_once("-of-").is_some_and(|(a, b)| digits(a) && digits(b));
    (!name.is_empty() && (of_n || (digits(rest) && NAMES.contains(&name)))).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_from_paths() {
        let s = |p: &str| split_of(Path::new(p));
        assert_eq!(s("test-00000-of-00002.parquet"), "test");
        assert_eq!(s("data/train-00001-of-00003.parquet"), "train");
        assert_eq!(s("data/validation.parquet"), "validation");
        assert_eq!(s("data/0000.parquet"), "");
        assert_eq!(s("cvqa.parquet"), "");
        assert_eq!(s("test/0000.parquet"), "test");
        assert_eq!(s("default/test/0000.parquet"), "default/test");
        assert_eq!(s("data/test/part-0.parquet"), "test");
        assert_eq!(s("japanese/train-00000-of-00001.parquet"), "japanese/train");
        assert_eq!(s("test/test-00000-of-00001.parquet"), "test");
        assert_eq!(split_in_name("my-data"), None);
        assert_eq!(split_in_name("test-00002"), Some("test".into()));
        assert_eq!(split_in_name("b-00001"), None);
        assert_eq!(split_in_name("part-0"), None);
    }
}
