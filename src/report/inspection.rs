//! What `inspect` finds about the selected neurons (`inspect.json`), rendered by
//! `write_inspection`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::html::{escape, table_html, CSS};
use super::tables::{csv_field, csv_num, Cell, Table};

/// `inspect.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inspection {
    pub model: String,
    pub dataset: String,
    pub position_rule: String,
    pub groups: Vec<String>,
    pub methods: BTreeMap<String, Vec<SetProfile>>,
    /// Culture -> [method][method] Jaccard index of their sets (methods in `overlap_methods`).
    pub overlap_between_methods: BTreeMap<String, Vec<Vec<f64>>>,
    pub overlap_methods: Vec<String>,
    /// Method -> [culture][culture] Jaccard index of its sets.
    pub overlap_between_cultures: BTreeMap<String, Vec<Vec<f64>>>,
}

/// One culture's set of one method.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetProfile {
    pub culture: String,
    pub neurons: Vec<NeuronProfile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NeuronProfile {
    pub layer: usize,
    pub index: usize,
    /// The method's score (absent for the random control).
    pub score: Option<f64>,
    /// Per culture (order of `Inspection::groups`): μ, the mean activation over counted positions.
    pub mean: Vec<f64>,
    /// Per culture: p, the share of counted positions where the activation is positive.
    pub prob: Vec<f64>,
    /// Examples with the highest mean activation of this neuron, highest first.
    pub top: Vec<TopExample>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopExample {
    /// Index of the row among the selected rows (what `thumbnail` and the HTML refer to).
    pub row: usize,
    pub id: String,
    pub culture: String,
    pub question: String,
    /// The neuron's mean activation over the example's counted positions.
    pub activation: f64,
}
/// Writes `inspect.html` (per method and culture: each neuron's μ and p per culture and its top
/// examples with their image thumbnails; the overlap matrices), `inspect_neurons.csv` and
/// `overlap.csv` into `out`. `thumbnail(row)` gives a row's image as PNG bytes.
pub fn write_inspection(
    out: &Path,
    r: &Inspection,
    thumbnail: &dyn Fn(usize) -> Option<Vec<u8>>,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut written = Vec::new();
    for (name, text) in
        [("inspect_neurons.csv", neurons_csv(r)), ("overlap.csv", overlap_csv(r)), ("inspect.html", html(r, thumbnail))]
    {
        let p = out.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        written.push(p);
    }
    Ok(written)
}

/// method,culture,rank,layer,index,score,mean_<g>…,prob_<g>…,top_ids (space-separated).
pub(crate) fn neurons_csv(r: &Inspection) -> String {
    let mut out = String::from("method,culture,rank,layer,index,score");
    for prefix in ["mean", "prob"] {
        for g in &r.groups {
            let _ = write!(out, ",{}", csv_field(&format!("{prefix}_{g}")));
        }
    }
    out.push_str(",top_ids\n");
    for (method, sets) in &r.methods {
        for set in sets {
            for (rank, n) in set.neurons.iter().enumerate() {
                let _ = write!(
                    out,
                    "{},{},{},{},{},{}",
                    csv_field(method),
                    csv_field(&set.culture),
                    rank + 1,
                    n.layer,
                    n.index,
                    csv_num(n.score)
                );
                for v in n.mean.iter().chain(&n.prob) {
                    let _ = write!(out, ",{}", csv_num(Some(*v)));
                }
                let ids: Vec<&str> = n.top.iter().map(|t| t.id.as_str()).collect();
                let _ = writeln!(out, ",{}", csv_field(&ids.join(" ")));
            }
        }
    }
    out
}

/// kind,key,a,b,jaccard: between methods (key = culture) and between cultures (key = method).
pub(crate) fn overlap_csv(r: &Inspection) -> String {
    let mut out = String::from("kind,key,a,b,jaccard\n");
    let mut rows = |kind: &str, key: &str, names: &[String], m: &[Vec<f64>]| {
        for (i, a) in names.iter().enumerate() {
            for (j, b) in names.iter().enumerate() {
                let v = m.get(i).and_then(|row| row.get(j)).copied();
                let _ = writeln!(out, "{kind},{},{},{},{}", csv_field(key), csv_field(a), csv_field(b), csv_num(v));
            }
        }
    };
    for (culture, m) in &r.overlap_between_methods {
        rows("methods", culture, &r.overlap_methods, m);
    }
    for (method, m) in &r.overlap_between_cultures {
        rows("cultures", method, &r.groups, m);
    }
    out
}

fn jaccard_table(names: &[String], m: &[Vec<f64>]) -> Table {
    let mut header = vec![Cell::new("")];
    header.extend(names.iter().map(|n| Cell::new(n.as_str())));
    let rows = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut row = vec![Cell::new(n.as_str())];
            row.extend(
                (0..names.len())
                    .map(|j| Cell::new(m.get(i).and_then(|r| r.get(j)).map_or("n/a".into(), |v| format!("{v:.2}")))),
            );
            row
        })
        .collect();
    Table { header, rows }
}

fn html(r: &Inspection, thumbnail: &dyn Fn(usize) -> Option<Vec<u8>>) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>culturelens: neuron inspection</title>\
         <style>{CSS} span.thumb{{display:inline-block;width:48px;height:48px;background-size:contain;background-repeat:no-repeat;vertical-align:middle;margin-right:.3em}}\
         td.top{{font-size:.85em}}</style></head><body>\n<h1>Neuron inspection</h1>\n<p>Model <strong>{}</strong> on \
         <strong>{}</strong> · position rule <strong>{}</strong>. μ is a neuron's mean activation over a culture's \
         counted positions, p the share of them where it is positive; the top examples are the rows with the \
         highest mean activation of the neuron, over every culture.</p>\n",
        escape(&r.model),
        escape(&r.dataset),
        escape(&r.position_rule)
    );
    // Each image once, as a CSS class: a row among the top examples of many neurons would
    // otherwise repeat its data URI in every cell.
    let rows: BTreeSet<usize> =
        r.methods.values().flatten().flat_map(|s| &s.neurons).flat_map(|n| &n.top).map(|t| t.row).collect();
    let mut with_image = BTreeSet::new();
    h.push_str("<style>");
    for row in rows {
        if let Some(png) = thumbnail(row) {
            let _ = write!(h, ".r{row}{{background-image:url(data:image/png;base64,{})}}", BASE64.encode(png));
            with_image.insert(row);
        }
    }
    h.push_str("</style>\n");
    let thumb = |row: usize| -> String {
        if with_image.contains(&row) {
            format!("<span class=\"thumb r{row}\"></span>")
        } else {
            String::new()
        }
    };
    h.push_str("<h2>Overlap between methods (Jaccard), per culture</h2>\n");
    for (culture, m) in &r.overlap_between_methods {
        let _ = writeln!(h, "<h3>{}</h3>", escape(culture));
        h.push_str(&table_html(&jaccard_table(&r.overlap_methods, m), "overlap"));
    }
    h.push_str("<h2>Overlap between cultures (Jaccard), per method</h2>\n");
    for (method, m) in &r.overlap_between_cultures {
        let _ = writeln!(h, "<h3>{}</h3>", escape(method));
        h.push_str(&table_html(&jaccard_table(&r.groups, m), "overlap"));
    }
    for (method, sets) in &r.methods {
        let _ = writeln!(h, "<h2>{}</h2>", escape(method));
        for set in sets {
            let _ = writeln!(h, "<h3>{}: {} neurons</h3>", escape(&set.culture), set.neurons.len());
            h.push_str("<div class=\"scroll\"><table><thead><tr><th>neuron</th><th>score</th>");
            for g in &r.groups {
                let _ = write!(h, "<th>μ {0}</th><th>p {0}</th>", escape(g));
            }
            h.push_str("<th>top examples</th></tr></thead><tbody>\n");
            for n in &set.neurons {
                let _ = write!(
                    h,
                    "<tr><th scope=\"row\">L{} #{}</th><td>{}</td>",
                    n.layer,
                    n.index,
                    n.score.map_or("".into(), |s| format!("{s:.4}"))
                );
                for (m, p) in n.mean.iter().zip(&n.prob) {
                    let _ = write!(h, "<td>{m:.3}</td><td>{:.1}%</td>", 100.0 * p);
                }
                h.push_str("<td class=\"top\">");
                for t in &n.top {
                    let _ = write!(
                        h,
                        "<div>{}<strong>{}</strong> {} ({:.3}): {}</div>",
                        thumb(t.row),
                        escape(&t.culture),
                        escape(&t.id),
                        t.activation,
                        escape(&t.question)
                    );
                }
                h.push_str("</td></tr>\n");
            }
            h.push_str("</tbody></table></div>\n");
        }
    }
    h.push_str("</body></html>\n");
    h
}
