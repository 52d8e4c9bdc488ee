//! Grouping loaded examples into cultures (by country, language or the pair).

use super::dataset::DatasetError;
use super::example::McExample;

/// What makes a group ("culture").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// `country`, e.g. "Japan".
    Country,
    /// `language`, e.g. "Japanese".
    Language,
    /// "language/country", e.g. "Japanese/Japan".
    Pair,
}

impl GroupBy {
    /// The group name of one example.
    pub fn name_of(self, ex: &McExample) -> String {
        match self {
            GroupBy::Country => ex.country.clone(),
            GroupBy::Language => ex.language.clone(),
            GroupBy::Pair => format!("{}/{}", ex.language, ex.country),
        }
    }
}

/// Examples split into groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouped {
    /// Kept group names; `examples[k].0` indexes this.
    pub names: Vec<String>,
    /// (group index, example), in input order.
    pub examples: Vec<(usize, McExample)>,
    /// Groups dropped for having fewer than `min_per_group` rows: (name, rows they had).
    pub skipped: Vec<(String, usize)>,
}

impl Grouped {
    /// Rows kept per group, indexed like `names`.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.names.len()];
        for (g, _) in &self.examples {
            c[*g] += 1;
        }
        c
    }
}

/// Split `examples` into groups, in order of first appearance.
///
/// * `only`: keep just these groups (still in first-appearance order); a name that no example has
///   is an error listing the groups present.
/// * `min_per_group`: a group with fewer rows (counted before `limit`) is dropped and reported in
///   `skipped`.
/// * `limit`: keep the first N rows of each group.
pub fn group(
    examples: Vec<McExample>,
    by: GroupBy,
    min_per_group: usize,
    only: Option<&[String]>,
    limit: Option<usize>,
) -> Result<Grouped, DatasetError> {
    // First-appearance order of every group, with row counts.
    let mut all: Vec<(String, usize)> = Vec::new();
    let keys: Vec<usize> = examples
        .iter()
        .map(|ex| {
            let name = by.name_of(ex);
            match all.iter().position(|(n, _)| *n == name) {
                Some(k) => {
                    all[k].1 += 1;
                    k
                }
                None => {
                    all.push((name, 1));
                    all.len() - 1
                }
            }
        })
        .collect();
    if let Some(only) = only {
        for want in only {
            if !all.iter().any(|(n, _)| n == want) {
                let available: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
                return Err(DatasetError::UnknownGroup { name: want.clone(), available: available.join(", ") });
            }
        }
    }
    // Old group index -> new index (None: dropped).
    let mut remap: Vec<Option<usize>> = vec![None; all.len()];
    let mut names = Vec::new();
    let mut skipped = Vec::new();
    for (k, (name, count)) in all.iter().enumerate() {
        if only.is_some_and(|o| !o.contains(name)) {
            continue;
        }
        if *count < min_per_group {
            skipped.push((name.clone(), *count));
            continue;
        }
        remap[k] = Some(names.len());
        names.push(name.clone());
    }
    let mut taken = vec![0usize; names.len()];
    let mut out = Vec::new();
    for (ex, k) in examples.into_iter().zip(keys) {
        if let Some(g) = remap[k] {
            if limit.is_none_or(|l| taken[g] < l) {
                taken[g] += 1;
                out.push((g, ex));
            }
        }
    }
    Ok(Grouped { names, examples: out, skipped })
}
