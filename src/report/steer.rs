//! Steering (dose-response): `steer_<method>_<culture>.csv`, its figure and the report section of each
//! `SteerResult`, and loading the `steer*.json` files a run left behind.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::summary::SteerResult;
use super::tables::{capitalised, csv_field, csv_num, opt_pct, Cell, Table};
use super::{figures, safe_stem, unique_stems};

/// One steering section of the report: the result and its figure (title, PNG path or SVG
/// document; absent when the figures could not be drawn).
pub(crate) struct Section<'a> {
    pub result: &'a SteerResult,
    pub figure: Option<(String, String)>,
}

/// Pairs each result with its figure (in order; results past the figures get none).
pub(crate) fn sections(steer: &[SteerResult], figures: Vec<(String, String)>) -> Vec<Section<'_>> {
    let mut figures = figures.into_iter();
    steer.iter().map(|result| Section { result, figure: figures.next() }).collect()
}

/// File stem of one sweep: `steer_<method>_<culture>`, file-name safe (what `steer` writes).
pub fn steer_stem(method: &str, culture: &str) -> String {
    format!("steer_{}_{}", safe_stem(method, "method"), safe_stem(culture, "culture"))
}

fn stem(r: &SteerResult) -> String {
    steer_stem(&r.method, &r.culture)
}

/// File stems of several results, unique even when one sweep was loaded twice.
pub(crate) fn stems(steer: &[SteerResult]) -> Vec<String> {
    let names: Vec<String> = steer.iter().map(stem).collect();
    unique_stems(names.iter().map(String::as_str), "steer")
}

pub(crate) fn csv_name(stem: &str) -> String {
    format!("{stem}.csv")
}

/// `r`'s [scale][group] entry of `grid` (None when missing / not finite).
fn at(grid: &[Vec<f64>], scale: usize, group: usize) -> Option<f64> {
    grid.get(scale).and_then(|row| row.get(group)).copied().filter(|v| v.is_finite())
}

/// Index of the steered culture in `r.groups`.
pub(crate) fn steered_index(r: &SteerResult) -> Option<usize> {
    r.groups.iter().position(|g| *g == r.culture)
}

/// A scale as given ("0.5", "2"); "n/a" when not finite.
pub(crate) fn scale_label(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "n/a".to_string()
    }
}

/// `steer_<method>_<culture>.csv`: scale,group,value,kept,confidence (fractions), one row per scale and group.
pub(crate) fn steer_csv(r: &SteerResult) -> String {
    let mut out = String::from("scale,group,value,kept,confidence\n");
    for (si, &scale) in r.scales.iter().enumerate() {
        for (g, group) in r.groups.iter().enumerate() {
            let nums = [&r.values, &r.kept, &r.confidence].map(|grid| csv_num(at(grid, si, g)));
            let _ = writeln!(out, "{},{},{}", csv_num(Some(scale)), csv_field(group), nums.join(","));
        }
    }
    out
}

/// Section heading (raw text).
pub(crate) fn heading(r: &SteerResult) -> String {
    format!("{}: the {} set ({} neurons) scaled", r.method, r.culture, r.set_size)
}

/// What the table shows.
pub(crate) fn note(r: &SteerResult) -> String {
    format!(
        "{} (%) on each culture with the {} set's activations multiplied by the scale (1 = unchanged); the \
         steered culture's column is emphasised. The sweep's CSV also holds the share of answers kept and \
         the confidence in the right option.",
        capitalised(r.metric.label()),
        r.culture
    )
}

/// Rows = base then each scale, columns = cultures, `metric` in % (steered culture emphasised).
pub(crate) fn steer_table(r: &SteerResult) -> Table {
    let steered = steered_index(r);
    let cell = |g: usize, text: String| if Some(g) == steered { Cell::strong(text) } else { Cell::new(text) };
    let mut header = vec![Cell::new("scale")];
    header.extend(r.groups.iter().enumerate().map(|(g, name)| cell(g, name.clone())));
    let mut base = vec![Cell::new("base (unscaled)")];
    base.extend((0..r.groups.len()).map(|g| cell(g, opt_pct(r.base.get(g).copied().filter(|v| v.is_finite())))));
    let mut rows = vec![base];
    for (si, &scale) in r.scales.iter().enumerate() {
        let mut row = vec![Cell::new(format!("× {}", scale_label(scale)))];
        row.extend((0..r.groups.len()).map(|g| cell(g, opt_pct(at(&r.values, si, g)))));
        rows.push(row);
    }
    Table { header, rows }
}

/// Writes `steer_<method>_<culture>.csv` into `out` and `figures/steer_<method>_<culture>.{png,svg}` (directories
/// created) and returns the written files.
pub fn write_steer(out: &Path, r: &SteerResult) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let stem = stem(r);
    let csv = out.join(csv_name(&stem));
    fs::write(&csv, steer_csv(r)).with_context(|| format!("writing {}", csv.display()))?;
    let fig = figures::steer_figure(&out.join("figures"), r, &stem)?;
    Ok(std::iter::once(csv).chain(fig.files).collect())
}

/// Reads every `steer*.json` file of `dir`, sorted by name (none, or no `dir`: empty).
pub fn load_steer_results(dir: &Path) -> anyhow::Result<Vec<SteerResult>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with("steer") && name.ends_with(".json") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {} as a steering result", p.display()))
        })
        .collect()
}
