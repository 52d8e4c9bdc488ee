//! `report.html`: one self-contained file (inline CSS, inline SVG figures, no scripts, no external references).

use std::fmt::Write as _;

use super::steer;
use super::summary::{ReportExtras, Summary};
use super::tables::{self, Table};

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

pub(crate) fn table_html(t: &Table, class: &str) -> String {
    let mut out = format!("<div class=\"scroll\"><table class=\"{class}\">\n<thead><tr>");
    for c in &t.header {
        let (open, close) = if c.strong { ("<th><strong>", "</strong></th>") } else { ("<th>", "</th>") };
        let _ = write!(out, "{open}{}{close}", escape(&c.text));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let (open, close) = match (i, c.strong) {
                (0, _) => ("<th scope=\"row\">", "</th>"),
                (_, true) => ("<td class=\"diag\"><strong>", "</strong></td>"),
                _ => ("<td>", "</td>"),
            };
            let _ = write!(out, "{open}{}{close}", escape(&c.text));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// Prepares a plotters SVG document for inlining: drops any XML prolog and the namespace URL (implicit for inline
/// SVG in HTML), and makes it scale with the page.
pub(crate) fn inline_svg(svg: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    svg[start..].replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1).replacen(
        "<svg ",
        "<svg role=\"img\" style=\"max-width:100%;height:auto\" ",
        1,
    )
}

pub(crate) const CSS: &str =
    "body{font-family:sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#1e1e1e}\
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right;white-space:nowrap}\
th[scope=row],thead th:first-child{text-align:left}thead th{background:#f0f0f0}\
td.diag{background:#fff3cd}.scroll{overflow-x:auto}figure{margin:1em 0 2em}\
figcaption{font-size:.9em;color:#555}";

fn figure_html(title: &str, svg: &str) -> String {
    format!("<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>\n", inline_svg(svg), escape(title))
}

/// The complete `report.html`. `figures` (and the steering sections' figures) are (title, SVG
/// document) pairs.
pub(crate) fn html(
    s: &Summary,
    x: &ReportExtras,
    figures: &[(String, String)],
    steering: &[steer::Section<'_>],
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>culturelens report: {} on {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(&s.model),
        escape(&s.dataset)
    );
    let _ = writeln!(h, "<h1>culturelens report</h1>");
    let _ = writeln!(
        h,
        "<p>Model <strong>{}</strong> on <strong>{}</strong> · position rule <strong>{}</strong> · ablation mode \
         <strong>{}</strong></p>",
        escape(&s.model),
        escape(&s.dataset),
        escape(&s.position_rule),
        escape(&x.mode)
    );
    h.push_str(&table_html(&tables::info_table(s, x), "info"));
    let _ = writeln!(h, "<h2>Groups</h2>");
    h.push_str(&table_html(&tables::groups_table(s, x), "groups"));
    let _ = writeln!(h, "<h2>Methods</h2>");
    let _ = writeln!(h, "<p>{}</p>", escape(&tables::delta_note(s)));
    if let Some(note) = tables::significance_note(s) {
        let _ = writeln!(h, "<p>{}</p>", escape(&note));
    }
    h.push_str(&table_html(&tables::methods_table(s), "methods"));
    for (name, m) in &s.methods {
        let _ = writeln!(h, "<h2>Ablation matrix: {} (k = {})</h2>", escape(name), m.k);
        let _ = writeln!(h, "<p>{} The diagonal (self) is highlighted.</p>", escape(&tables::matrix_note(s)));
        h.push_str(&table_html(&tables::matrix_table(s, m), "matrix"));
    }
    let _ = writeln!(h, "<h2>Neurons per layer</h2>");
    let _ = writeln!(h, "<p>Selected neurons per layer (0-based), counted per culture and summed over cultures.</p>");
    h.push_str(&table_html(&tables::neurons_table(s, x), "neurons"));
    if !s.bands.is_empty() {
        let _ = writeln!(h, "<h2>Which band matters</h2>");
        let _ = writeln!(h, "<p>{}</p>", escape(&tables::bands_note(s)));
        for (name, bands) in &s.bands {
            let _ = writeln!(h, "<h3>{}</h3>", escape(name));
            h.push_str(&table_html(&tables::bands_table(bands), "bands"));
        }
    }
    if !steering.is_empty() {
        let _ = writeln!(h, "<h2>Steering (dose–response)</h2>");
        for sec in steering {
            let r = sec.result;
            let _ = writeln!(h, "<h3>{}</h3>", escape(&steer::heading(r)));
            let _ = writeln!(h, "<p>{}</p>", escape(&steer::note(r)));
            h.push_str(&table_html(&steer::steer_table(r), "steer"));
            if let Some((title, svg)) = &sec.figure {
                h.push_str(&figure_html(title, svg));
            }
        }
    }
    if !figures.is_empty() {
        let _ = writeln!(h, "<h2>Figures</h2>");
        for (title, svg) in figures {
            h.push_str(&figure_html(title, svg));
        }
    }
    if !x.notes.is_empty() {
        let _ = writeln!(h, "<h2>Notes</h2>\n<ul>");
        for n in &x.notes {
            let _ = writeln!(h, "<li>{}</li>", escape(n));
        }
        let _ = writeln!(h, "</ul>");
    }
    h.push_str("</body>\n</html>\n");
    h
}
