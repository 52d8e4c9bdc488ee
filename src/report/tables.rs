//! Tables of the report: a small renderer-neutral table model (shared with `html.rs`), the Markdown report and
//! the CSV files. All numbers are formatted here so that Markdown and HTML show identical values.

use std::fmt::Write as _;

use super::summary::{MethodSummary, ReportExtras, Summary};

/// One table cell: raw (unescaped) text, optionally emphasised (the ablation-matrix diagonal).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cell {
    pub text: String,
    pub strong: bool,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Self {
        Cell { text: text.into(), strong: false }
    }
    pub fn strong(text: impl Into<String>) -> Self {
        Cell { text: text.into(), strong: true }
    }
}

/// A table with a header row; the first column is a row label.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    pub header: Vec<Cell>,
    pub rows: Vec<Vec<Cell>>,
}

/// Rounds to one decimal, mapping -0.0 to 0.0 so that "-0.0" is never printed.
fn round1(v: f64) -> f64 {
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

/// A fraction as a percentage with 1 decimal ("83.3"); "n/a" when not finite.
pub(crate) fn pct(frac: f64) -> String {
    if frac.is_finite() {
        format!("{:.1}", round1(frac * 100.0))
    } else {
        "n/a".to_string()
    }
}

/// A fractional Δ in signed percentage points with 1 decimal ("-8.3", "+0.0"); "n/a" when not finite.
pub(crate) fn pp(frac: f64) -> String {
    if frac.is_finite() {
        format!("{:+.1}", round1(frac * 100.0))
    } else {
        "n/a".to_string()
    }
}

fn opt_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), pct)
}

fn opt_pp(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), pp)
}

/// Neurons per layer of a method: `MethodSummary::neurons_per_layer`, or the per-group sum from the extras when the
/// summary vector is empty.
pub(crate) fn neurons_per_layer(name: &str, m: &MethodSummary, x: &ReportExtras) -> Vec<usize> {
    if !m.neurons_per_layer.is_empty() {
        return m.neurons_per_layer.clone();
    }
    let mut out = Vec::new();
    for g in x.neurons_per_layer_per_group.get(name).into_iter().flatten() {
        if out.len() < g.len() {
            out.resize(g.len(), 0);
        }
        for (o, c) in out.iter_mut().zip(g) {
            *o += c;
        }
    }
    out
}

/// Run information: key/value rows.
pub(crate) fn info_table(s: &Summary, x: &ReportExtras) -> Table {
    let kv = |k: &str, v: &str| vec![Cell::new(k), Cell::new(v)];
    let methods: Vec<&str> = s.methods.keys().map(String::as_str).collect();
    Table {
        header: vec![Cell::new("field"), Cell::new("value")],
        rows: vec![
            kv("model", &s.model),
            kv("dataset", &s.dataset),
            kv("position rule", &s.position_rule),
            kv("ablation mode", &x.mode),
            kv("groups", &s.groups.len().to_string()),
            kv("methods", &methods.join(", ")),
        ],
    }
}

/// What the Δs of the methods table are.
pub(crate) fn delta_note(s: &Summary) -> String {
    format!(
        "Δ are changes of {} after ablation in percentage points (pp); self = the culture whose neurons are \
         ablated, cross = the other cultures; gap = self − cross.",
        s.metric.label()
    )
}

/// What the cells of an ablation matrix are.
pub(crate) fn matrix_note(s: &Summary) -> String {
    let label = s.metric.label();
    let mut cap = label.chars();
    let head = cap.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    format!("{head}{} (%) after ablating the row culture's neurons, evaluated on the column culture.", cap.as_str())
}

/// "k", or "k (sizes lo–hi)" when some culture's set holds fewer neurons.
pub(crate) fn k_cell(m: &MethodSummary) -> String {
    let (lo, hi) = m.set_size_range();
    if lo == m.k && hi == m.k {
        m.k.to_string()
    } else if lo == hi {
        format!("{} (sets of {lo})", m.k)
    } else {
        format!("{} (sets of {lo}–{hi})", m.k)
    }
}

/// Report notes on sets smaller than k: which cultures, and why for that method.
pub(crate) fn size_notes(s: &Summary) -> Vec<String> {
    s.methods
        .iter()
        .filter_map(|(name, m)| {
            let short: Vec<String> =
                m.set_sizes.iter().filter(|(_, &n)| n < m.k).map(|(g, n)| format!("{g} {n}")).collect();
            if short.is_empty() {
                return None;
            }
            let why = match name.as_str() {
                "cas" => "CAS keeps only neurons whose margin over every other culture is positive",
                "lape" => "fewer than k neurons have an activation probability above τ for those cultures",
                "lape-tang" => {
                    "Tang et al.'s LAPE keeps the lowest-entropy top_rate of all neurons, shared by all cultures"
                }
                _ => "the method found fewer candidates",
            };
            Some(format!("{name}: sets smaller than k = {} ({}): {why}.", m.k, short.join(", ")))
        })
        .collect()
}

/// Report notes on hidden labels: what the metric then is, and how many rows lack one.
pub(crate) fn label_notes(s: &Summary, x: &ReportExtras) -> Vec<String> {
    let total: usize = x.examples_per_group.iter().sum();
    let labelled: usize = x.labelled_per_group.iter().sum();
    if x.labelled_per_group.is_empty() || labelled == total {
        return Vec::new();
    }
    let hidden = total.saturating_sub(labelled);
    vec![match s.metric {
        crate::report::Metric::Kept => format!(
            "{hidden} of {total} rows have no label (hidden, as on leaderboard test splits), so the base values, \
             matrices and Δs measure how often the unablated model's answer is kept (100 % at baseline), not \
             accuracy. summary.json also holds each method's prob_drop: the mean drop of the base answer's \
             probability over the option letters."
        ),
        crate::report::Metric::Accuracy => format!(
            "{hidden} of {total} rows have no label: accuracy counts the labelled rows only; the share of base \
             answers kept (kept in summary.json) and the drop of their probability (prob_drop) cover every row."
        ),
    }]
}

/// Per-group examples and base accuracy.
pub(crate) fn groups_table(s: &Summary, x: &ReportExtras) -> Table {
    let rows = s
        .groups
        .iter()
        .enumerate()
        .map(|(g, name)| {
            let n = x.examples_per_group.get(g).map_or_else(|| "n/a".to_string(), |n| n.to_string());
            vec![Cell::new(name.as_str()), Cell::new(n), Cell::new(opt_pct(s.base(g)))]
        })
        .collect();
    let base = format!("base {} (%)", s.metric.label());
    Table { header: vec![Cell::new("group"), Cell::new("examples"), Cell::new(base)], rows }
}

/// Methods × (k, mean self Δ, mean cross Δ, gap, flip rate).
pub(crate) fn methods_table(s: &Summary) -> Table {
    let header = ["method", "k", "mean self Δ (pp)", "mean cross Δ (pp)", "gap (pp)", "flip rate (%)"];
    let rows = s
        .methods
        .iter()
        .map(|(name, m)| {
            vec![
                Cell::new(name.as_str()),
                Cell::new(k_cell(m)),
                Cell::new(pp(m.mean_self_delta)),
                Cell::new(pp(m.mean_cross_delta)),
                Cell::new(pp(m.gap)),
                Cell::new(pct(m.flip_rate)),
            ]
        })
        .collect();
    Table { header: header.into_iter().map(Cell::new).collect(), rows }
}

/// Ablation matrix of one method: rows = ablated culture's neuron set, columns = evaluated culture, accuracy in %
/// (diagonal emphasised), framed by the base accuracy row and the per-culture self / cross Δ rows.
pub(crate) fn matrix_table(s: &Summary, m: &MethodSummary) -> Table {
    let mut header = vec![Cell::new("ablated ↓ / evaluated →")];
    header.extend(s.groups.iter().map(|g| Cell::new(g.as_str())));
    let mut rows = Vec::with_capacity(s.groups.len() + 3);
    let mut base = vec![Cell::new("base (no ablation)")];
    base.extend((0..s.groups.len()).map(|e| Cell::new(opt_pct(s.base(e)))));
    rows.push(base);
    for (a, name) in s.groups.iter().enumerate() {
        let mut row = vec![Cell::new(name.as_str())];
        row.extend((0..s.groups.len()).map(|e| {
            let t = opt_pct(m.acc(a, e));
            if a == e {
                Cell::strong(t)
            } else {
                Cell::new(t)
            }
        }));
        rows.push(row);
    }
    for (label, map) in [("self Δ vs base (pp)", &m.self_delta), ("cross Δ vs base (pp)", &m.cross_delta)] {
        let mut row = vec![Cell::new(label)];
        row.extend(s.groups.iter().map(|g| Cell::new(opt_pp(map.get(g).copied()))));
        rows.push(row);
    }
    Table { header, rows }
}

/// Layers × methods selected-neuron counts, with a total row.
pub(crate) fn neurons_table(s: &Summary, x: &ReportExtras) -> Table {
    let mut header = vec![Cell::new("layer")];
    header.extend(s.methods.keys().map(|k| Cell::new(k.as_str())));
    let per_method: Vec<Vec<usize>> = s.methods.iter().map(|(n, m)| neurons_per_layer(n, m, x)).collect();
    let layers = per_method.iter().map(Vec::len).max().unwrap_or(0);
    let mut rows: Vec<Vec<Cell>> = (0..layers)
        .map(|l| {
            let mut row = vec![Cell::new(l.to_string())];
            row.extend(per_method.iter().map(|v| Cell::new(v.get(l).copied().unwrap_or(0).to_string())));
            row
        })
        .collect();
    let mut total = vec![Cell::strong("total")];
    total.extend(per_method.iter().map(|v| Cell::strong(v.iter().sum::<usize>().to_string())));
    rows.push(total);
    Table { header, rows }
}

/// Escapes Markdown-significant characters (CommonMark backslash escapes) and flattens line breaks.
pub(crate) fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn md_cell(c: &Cell) -> String {
    let t = md_escape(&c.text);
    if c.strong && !t.is_empty() {
        format!("**{t}**")
    } else {
        t
    }
}

/// Renders a table as a GitHub-flavoured Markdown table (label column left-aligned, others right-aligned).
pub(crate) fn table_md(t: &Table) -> String {
    let line = |cells: &[Cell]| format!("| {} |\n", cells.iter().map(md_cell).collect::<Vec<_>>().join(" | "));
    let mut out = line(&t.header);
    let align: Vec<&str> = (0..t.header.len()).map(|i| if i == 0 { ":---" } else { "---:" }).collect();
    out.push_str(&format!("| {} |\n", align.join(" | ")));
    for r in &t.rows {
        out.push_str(&line(r));
    }
    out
}

/// The complete `report.md`. `figures` are paths relative to the report directory (PNG files).
pub(crate) fn markdown(s: &Summary, x: &ReportExtras, figures: &[(String, String)]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# culturelens report\n");
    let _ = writeln!(
        md,
        "Model **{}** on **{}** · position rule **{}** · ablation mode **{}**\n",
        md_escape(&s.model),
        md_escape(&s.dataset),
        md_escape(&s.position_rule),
        md_escape(&x.mode)
    );
    md.push_str(&table_md(&info_table(s, x)));
    let _ = writeln!(md, "\n## Groups\n");
    md.push_str(&table_md(&groups_table(s, x)));
    let _ = writeln!(md, "\n## Methods\n");
    let _ = writeln!(md, "{}\n", delta_note(s));
    md.push_str(&table_md(&methods_table(s)));
    for (name, m) in &s.methods {
        let _ = writeln!(md, "\n## Ablation matrix: {} (k = {})\n", md_escape(name), m.k);
        let _ = writeln!(md, "{} The diagonal (self) is in bold.\n", matrix_note(s));
        md.push_str(&table_md(&matrix_table(s, m)));
    }
    let _ = writeln!(md, "\n## Neurons per layer\n");
    let _ = writeln!(md, "Selected neurons per layer (0-based), counted per culture and summed over cultures.\n");
    md.push_str(&table_md(&neurons_table(s, x)));
    if !figures.is_empty() {
        let _ = writeln!(md, "\n## Figures\n");
        for (title, path) in figures {
            let _ = writeln!(md, "![{}]({})\n", md_escape(title), path);
        }
    }
    if !x.notes.is_empty() {
        let _ = writeln!(md, "\n## Notes\n");
        for n in &x.notes {
            let _ = writeln!(md, "- {}", md_escape(n));
        }
    }
    md
}

/// One CSV field (RFC 4180 quoting when needed).
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A fraction for CSV: shortest round-trip representation, empty when missing / not finite.
fn csv_num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => String::new(),
    }
}

/// `methods.csv`: method,k,mean_self_delta,mean_cross_delta,gap,flip_rate (fractions).
pub(crate) fn methods_csv(s: &Summary) -> String {
    let mut out = String::from("method,k,mean_self_delta,mean_cross_delta,gap,flip_rate,set_size_min,set_size_max\n");
    for (name, m) in &s.methods {
        let nums = [m.mean_self_delta, m.mean_cross_delta, m.gap, m.flip_rate].map(|v| csv_num(Some(v)));
        let (lo, hi) = m.set_size_range();
        let _ = writeln!(out, "{},{},{},{lo},{hi}", csv_field(name), m.k, nums.join(","));
    }
    out
}

/// `matrix_<method>.csv`: ablated,evaluated,base_<metric>,<metric>,delta (fractions), the metric
/// being accuracy, or the share of kept answers when labels are hidden.
pub(crate) fn matrix_csv(s: &Summary, m: &MethodSummary) -> String {
    let metric = match s.metric {
        crate::report::Metric::Accuracy => "accuracy",
        crate::report::Metric::Kept => "kept",
    };
    let mut out = format!("ablated,evaluated,base_{metric},{metric},delta\n");
    for (a, an) in s.groups.iter().enumerate() {
        for (e, en) in s.groups.iter().enumerate() {
            let _ = writeln!(
                out,
                "{},{},{},{},{}",
                csv_field(an),
                csv_field(en),
                csv_num(s.base(e)),
                csv_num(m.acc(a, e)),
                csv_num(m.delta(s, a, e))
            );
        }
    }
    out
}

/// Label used in `neurons_per_layer.csv` for the aggregate (all-groups) rows.
pub(crate) const ALL_GROUPS: &str = "(all)";

/// `neurons_per_layer.csv`: method,group,layer,count. Per-group rows come from the extras; rows with group
/// `(all)` are the method's aggregate `neurons_per_layer` (do not add them to the per-group rows).
pub(crate) fn neurons_csv(s: &Summary, x: &ReportExtras) -> String {
    let mut out = String::from("method,group,layer,count\n");
    for (name, m) in &s.methods {
        let method = csv_field(name);
        if let Some(per_group) = x.neurons_per_layer_per_group.get(name) {
            for (g, counts) in per_group.iter().enumerate() {
                let group = s.groups.get(g).map_or_else(|| format!("#{g}"), |n| n.clone());
                for (l, c) in counts.iter().enumerate() {
                    let _ = writeln!(out, "{method},{},{l},{c}", csv_field(&group));
                }
            }
        }
        for (l, c) in neurons_per_layer(name, m, x).iter().enumerate() {
            let _ = writeln!(out, "{method},{ALL_GROUPS},{l},{c}");
        }
    }
    out
}
