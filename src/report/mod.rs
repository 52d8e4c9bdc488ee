//! Run report: `summary.json`, `report.md`, CSV tables, PNG/SVG figures and a self-contained `report.html`.
//!
//! Layout of the output directory:
//! ```text
//! summary.json  report.md  report.html  methods.csv  matrix_<method>.csv  neurons_per_layer.csv
//! figures/neurons_per_layer.{png,svg}  figures/heatmap_<method>.{png,svg}  figures/methods.{png,svg}
//! ```

mod figures;
mod html;
mod summary;
mod tables;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use figures::{ensure_font, FONT_BYTES};
pub use summary::{MethodSummary, Metric, ReportExtras, Summary};

/// Unique, file-name-safe stems for the methods (same order as `Summary::methods`), used for
/// `matrix_<stem>.csv` and `figures/heatmap_<stem>.*`.
pub(crate) fn method_stems(s: &Summary) -> Vec<String> {
    let mut seen = BTreeSet::new();
    s.methods
        .keys()
        .map(|name| {
            let base: String =
                name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
            let base = if base.is_empty() { "method".to_string() } else { base };
            let mut stem = base.clone();
            let mut k = 2;
            while !seen.insert(stem.clone()) {
                stem = format!("{base}_{k}");
                k += 1;
            }
            stem
        })
        .collect()
}

/// Writes the full report into `out` (created if needed) and returns the written files.
///
/// Tables, CSVs and `summary.json` are written first; if the figures cannot be drawn (e.g. unusable font),
/// `report.md` / `report.html` are still written without figures and the error is returned.
pub fn write_report(out: &Path, s: &Summary, x: &ReportExtras) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    let mut put = |name: &str, contents: &str| -> anyhow::Result<()> {
        let path = out.join(name);
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    put("summary.json", &(serde_json::to_string_pretty(s)? + "\n"))?;
    put("methods.csv", &tables::methods_csv(s))?;
    for (m, stem) in s.methods.values().zip(method_stems(s)) {
        put(&format!("matrix_{stem}.csv"), &tables::matrix_csv(s, m))?;
    }
    put("neurons_per_layer.csv", &tables::neurons_csv(s, x))?;

    let (figs, fig_err) = match figures::write_figures(&out.join("figures"), s, x) {
        Ok(f) => (f, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut extras = x.clone();
    extras.notes.extend(tables::label_notes(s, x));
    extras.notes.extend(tables::size_notes(s));
    if let Some(e) = &fig_err {
        extras.notes.push(format!("Figures could not be drawn: {e:#}"));
    }
    let md_figs: Vec<(String, String)> =
        figs.iter().map(|f| (f.title.clone(), format!("figures/{}.png", f.stem))).collect();
    let mut svg_figs = Vec::with_capacity(figs.len());
    for f in &figs {
        let path = out.join("figures").join(format!("{}.svg", f.stem));
        let svg = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        svg_figs.push((f.title.clone(), svg));
    }
    put("report.md", &tables::markdown(s, &extras, &md_figs))?;
    put("report.html", &html::html(s, &extras, &svg_figs))?;
    written.extend(figs.into_iter().flat_map(|f| f.files));
    match fig_err {
        Some(e) => Err(e.context("figures failed (tables, report.md and report.html were written)")),
        None => Ok(written),
    }
}
