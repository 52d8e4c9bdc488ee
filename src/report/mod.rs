//! Run report: `summary.json`, `report.md`, CSV tables, PNG/SVG figures and a self-contained `report.html`.
//!
//! Layout of the output directory (files in brackets only when their data exists):
//! ```text
//! summary.json  report.md  report.html  methods.csv  matrix_<method>.csv  neurons_per_layer.csv
//! [bands.csv]  [steer_<method>_<culture>.csv]
//! figures/neurons_per_layer.{png,svg}  [figures/neurons_per_layer_share.{png,svg}]
//! figures/heatmap_<method>.{png,svg}  figures/methods.{png,svg}  [figures/steer_<method>_<culture>.{png,svg}]
//! ```
//! `bands.csv` comes with `Summary::bands`, the share figure with `ReportExtras::layer_width`, and
//! the steering files with each `SteerResult` passed to `write_report` (see `load_steer_results`).

mod console;
mod figures;
mod html;
mod inspection;
mod steer;
mod summary;
mod tables;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use console::{steer_text, summary_text};
pub use figures::{ensure_font, FONT_BYTES};
pub use inspection::{write_inspection, Inspection, NeuronProfile, SetProfile, TopExample};
pub use steer::{load_steer_results, steer_stem, write_steer};
pub use summary::{
    BandResult, Evaluation, Intervals, MethodSummary, Metric, ReportExtras, Significance, SteerResult, Summary,
};

/// Unique, file-name-safe stems for the methods (same order as `Summary::methods`), used for
/// `matrix_<stem>.csv` and `figures/heatmap_<stem>.*`.
pub(crate) fn method_stems(s: &Summary) -> Vec<String> {
    unique_stems(s.methods.keys().map(String::as_str), "method")
}

/// `name` with every character a file name may not safely hold replaced by `_` (`fallback` when empty).
pub(crate) fn safe_stem(name: &str, fallback: &str) -> String {
    let stem: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if stem.is_empty() {
        fallback.to_string()
    } else {
        stem
    }
}

/// `safe_stem` of each name, suffixed `_2`, `_3`, … where two names would share a file.
pub(crate) fn unique_stems<'a>(names: impl IntoIterator<Item = &'a str>, fallback: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    names
        .into_iter()
        .map(|name| {
            let base = safe_stem(name, fallback);
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

/// Writes the full report into `out` (created if needed) and returns the written files. Each of
/// `steer` adds `steer_<method>_<culture>.csv`, its dose-response figure and a section of the report.
///
/// Tables, CSVs and `summary.json` are written first; if the figures cannot be drawn (e.g. unusable font),
/// `report.md` / `report.html` are still written without figures and the error is returned.
pub fn write_report(out: &Path, s: &Summary, x: &ReportExtras, steer: &[SteerResult]) -> anyhow::Result<Vec<PathBuf>> {
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
    if !s.bands.is_empty() {
        put("bands.csv", &tables::bands_csv(s))?;
    }
    let steer_stems = steer::stems(steer);
    for (r, stem) in steer.iter().zip(&steer_stems) {
        put(&steer::csv_name(stem), &steer::steer_csv(r))?;
    }

    let fig_dir = out.join("figures");
    let drawn = figures::write_figures(&fig_dir, s, x).and_then(|main| {
        let steered = steer.iter().zip(&steer_stems).map(|(r, stem)| figures::steer_figure(&fig_dir, r, stem));
        Ok((main, steered.collect::<anyhow::Result<Vec<_>>>()?))
    });
    let ((figs, steer_figs), fig_err) = match drawn {
        Ok(f) => (f, None),
        Err(e) => ((Vec::new(), Vec::new()), Some(e)),
    };
    let mut extras = x.clone();
    extras.notes.extend(tables::label_notes(s, x));
    extras.notes.extend(tables::size_notes(s));
    if let Some(e) = &fig_err {
        extras.notes.push(format!("Figures could not be drawn: {e:#}"));
    }
    let md_fig = |f: &figures::Written| (f.title.clone(), format!("figures/{}.png", f.stem));
    let svg_fig = |f: &figures::Written| -> anyhow::Result<(String, String)> {
        let path = fig_dir.join(format!("{}.svg", f.stem));
        let svg = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok((f.title.clone(), svg))
    };
    let md_figs: Vec<(String, String)> = figs.iter().map(md_fig).collect();
    let svg_figs = figs.iter().map(svg_fig).collect::<anyhow::Result<Vec<_>>>()?;
    let md_steer = steer::sections(steer, steer_figs.iter().map(md_fig).collect());
    let svg_steer = steer::sections(steer, steer_figs.iter().map(svg_fig).collect::<anyhow::Result<_>>()?);
    put("report.md", &tables::markdown(s, &extras, &md_figs, &md_steer))?;
    put("report.html", &html::html(s, &extras, &svg_figs, &svg_steer))?;
    written.extend(figs.into_iter().chain(steer_figs).flat_map(|f| f.files));
    match fig_err {
        Some(e) => Err(e.context("figures failed (tables, report.md and report.html were written)")),
        None => Ok(written),
    }
}
