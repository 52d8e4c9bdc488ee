//! Tables of the report: a small renderer-neutral table model (shared with `html.rs`), the Markdown report and
//! the CSV files. All numbers are formatted here so that Markdown and HTML show identical values.

use std::fmt::Write as _;

use super::steer;
use super::summary::{BandResult, MethodSummary, ReportExtras, Summary};

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

/// A number with 1 decimal ("12.5"); "n/a" when not finite.
pub(crate) fn dec1(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}", round1(v))
    } else {
        "n/a".to_string()
    }
}

/// A fraction as a percentage with 1 decimal ("83.3"); "n/a" when not finite.
pub(crate) fn pct(frac: f64) -> String {
    dec1(frac * 100.0)
}

/// A fractional Δ in signed percentage points with 1 decimal ("-8.3", "+0.0"); "n/a" when not finite.
pub(crate) fn pp(frac: f64) -> String {
    if frac.is_finite() {
        format!("{:+.1}", round1(frac * 100.0))
    } else {
        "n/a".to_string()
    }
}

pub(crate) fn opt_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), pct)
}

fn opt_pp(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), pp)
}

/// A Δ in pp with its interval when there is one ("-5.3 [-8.0, -2.7]").
fn pp_ci(v: Option<f64>, ci: Option<&[f64; 2]>) -> String {
    match (v, ci) {
        (Some(v), Some([lo, hi])) if v.is_finite() => format!("{} [{}, {}]", pp(v), pp(*lo), pp(*hi)),
        _ => opt_pp(v),
    }
}

/// A p-value to 3 decimals, "<0.001" below that; "n/a" when not finite.
pub(crate) fn p_value(p: f64) -> String {
    if !p.is_finite() {
        "n/a".to_string()
    } else if p < 0.001 {
        "<0.001".to_string()
    } else {
        format!("{p:.3}")
    }
}

/// "95% CI", at the run's interval level (95 % when the file does not say).
fn ci_label(s: &Summary) -> String {
    let level = s.significance.as_ref().map_or(0.95, |g| g.level) * 100.0;
    let digits = if (level - level.round()).abs() < 1e-9 { 0 } else { 1 };
    format!("{level:.digits$}% CI")
}

/// Whether some method has intervals, and whether some has a p-value against the random control.
fn significance_shown(s: &Summary) -> (bool, bool) {
    let ci = s.methods.values().any(|m| m.intervals.is_some());
    let p = s.methods.values().any(|m| m.p_gap_vs_random.is_some());
    (ci, p)
}

/// `s` with its first letter upper-cased (labels open sentences).
pub(crate) fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// "layers 4–11" for the band [4, 12) (0-based, end excluded).
pub(crate) fn layers_label([first, end]: [usize; 2]) -> String {
    match end.checked_sub(first) {
        Some(1) => format!("layer {first}"),
        Some(n) if n > 1 => format!("layers {first}–{}", end - 1),
        _ => format!("no layers ([{first}, {end}))"),
    }
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

fn kv(k: &str, v: impl Into<String>) -> Vec<Cell> {
    vec![Cell::new(k), Cell::new(v)]
}

/// Run information: key/value rows (the optional ones only when the run recorded them).
pub(crate) fn info_table(s: &Summary, x: &ReportExtras) -> Table {
    let methods: Vec<&str> = s.methods.keys().map(String::as_str).collect();
    let mut rows = vec![
        kv("model", s.model.as_str()),
        kv("dataset", s.dataset.as_str()),
        kv("position rule", s.position_rule.as_str()),
        kv("ablation mode", x.mode.as_str()),
        kv("groups", s.groups.len().to_string()),
        kv("methods", methods.join(", ")),
    ];
    if x.layer_width > 0 {
        rows.push(kv("LM neurons per layer", x.layer_width.to_string()));
    }
    if let Some(band) = s.layer_band {
        rows.push(kv("layer band (sets cut to it)", layers_label(band)));
    }
    if !x.weighting.is_empty() {
        rows.push(kv("neuron weighting", weighting_label(&x.weighting)));
    }
    rows.extend(evaluation_rows(s));
    rows.extend(significance_rows(s));
    Table { header: vec![Cell::new("field"), Cell::new("value")], rows }
}

/// What a weighting means for the statistics the sets came from.
fn weighting_label(w: &str) -> String {
    match w {
        "token" => "token: every token weighs the same".to_string(),
        "example" => "example: every question weighs the same".to_string(),
        other => other.to_string(),
    }
}

/// Info rows of the identify / evaluate split (none when the same rows did both).
fn evaluation_rows(s: &Summary) -> Vec<Vec<Cell>> {
    let Some(e) = &s.evaluation else { return Vec::new() };
    let rows = format!(
        "{} / {} (all cultures{})",
        e.identify_rows.values().sum::<usize>(),
        e.evaluate_rows.values().sum::<usize>(),
        if e.cross_fit { ", first fold" } else { "" }
    );
    vec![
        kv(
            "evaluation split",
            format!("identify on {} % of each culture's rows, evaluate on the rest", pct(e.identify_fraction)),
        ),
        kv("split seed", e.seed.to_string()),
        kv(
            "cross-fit",
            if e.cross_fit { "yes: parts swapped, every row scored under the sets of the other part" } else { "no" },
        ),
        kv("rows identify / evaluate", rows),
    ]
}

/// Info rows of the resampling behind the intervals and p-values.
fn significance_rows(s: &Summary) -> Vec<Vec<Cell>> {
    let Some(g) = &s.significance else { return Vec::new() };
    let permutations = match g.permutations {
        0 => "exact: every label assignment enumerated".to_string(),
        n => format!("{n} random label assignments"),
    };
    let draws = match g.random_draws {
        0 => "none (no random control)".to_string(),
        n => n.to_string(),
    };
    vec![
        kv("intervals", format!("{}, {} bootstrap resamples", ci_label(s), g.resamples)),
        kv("gap test permutations", permutations),
        kv("random control draws", draws),
        kv("resampling seed", g.seed.to_string()),
    ]
}

/// What the Δs of the methods table are.
pub(crate) fn delta_note(s: &Summary) -> String {
    format!(
        "Δ are changes of {} after ablation in percentage points (pp); self = the culture whose neurons are \
         ablated, cross = the other cultures; gap = self − cross.",
        s.metric.label()
    )
}

/// How the intervals and p-values were computed (None when the table shows neither).
pub(crate) fn significance_note(s: &Summary) -> Option<String> {
    let (ci, p) = significance_shown(s);
    let mut parts = Vec::new();
    if ci {
        parts.push(format!(
            "Intervals [{}] are percentile bootstrap intervals over the examples, resampled within each culture",
            ci_label(s)
        ));
    }
    if p {
        parts.push(
            "p (gap vs random) is a two-sided permutation test of (gap − random gap) that exchanges each \
             culture's set with the random control's draws for it"
                .to_string(),
        );
    }
    (!parts.is_empty()).then(|| parts.join("; ") + ".")
}

/// What the cells of an ablation matrix are.
pub(crate) fn matrix_note(s: &Summary) -> String {
    format!(
        "{} (%) after ablating the row culture's neurons, evaluated on the column culture.",
        capitalised(s.metric.label())
    )
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

fn opt_count(n: Option<&usize>) -> String {
    n.map_or_else(|| "n/a".to_string(), usize::to_string)
}

/// Per-group examples and base accuracy (and the rows of each side of an evaluation split).
pub(crate) fn groups_table(s: &Summary, x: &ReportExtras) -> Table {
    let split = s.evaluation.as_ref();
    let rows = s
        .groups
        .iter()
        .enumerate()
        .map(|(g, name)| {
            let n = opt_count(x.examples_per_group.get(g));
            let mut row = vec![Cell::new(name.as_str()), Cell::new(n), Cell::new(opt_pct(s.base(g)))];
            if let Some(e) = split {
                row.push(Cell::new(opt_count(e.identify_rows.get(name))));
                row.push(Cell::new(opt_count(e.evaluate_rows.get(name))));
            }
            row
        })
        .collect();
    let base = format!("base {} (%)", s.metric.label());
    let mut header = vec![Cell::new("group"), Cell::new("examples"), Cell::new(base)];
    if split.is_some() {
        header.extend([Cell::new("identify rows"), Cell::new("evaluate rows")]);
    }
    Table { header, rows }
}

/// Methods × (k, mean self Δ, mean cross Δ, gap, flip rate), with the intervals of mean self Δ and
/// gap and a p-value column when the run computed them.
pub(crate) fn methods_table(s: &Summary) -> Table {
    let (ci, p) = significance_shown(s);
    let with_ci = |label: &str| if ci { format!("{label} [{}]", ci_label(s)) } else { label.to_string() };
    let mut header = vec![
        "method".to_string(),
        "k".to_string(),
        with_ci("mean self Δ (pp)"),
        "mean cross Δ (pp)".to_string(),
        with_ci("gap (pp)"),
        "flip rate (%)".to_string(),
    ];
    if p {
        header.push("p (gap vs random)".to_string());
    }
    let rows = s
        .methods
        .iter()
        .map(|(name, m)| {
            let ivs = m.intervals.as_ref();
            let mut row = vec![
                Cell::new(name.as_str()),
                Cell::new(k_cell(m)),
                Cell::new(pp_ci(Some(m.mean_self_delta), ivs.map(|i| &i.mean_self_delta))),
                Cell::new(pp(m.mean_cross_delta)),
                Cell::new(pp_ci(Some(m.gap), ivs.map(|i| &i.gap))),
                Cell::new(pct(m.flip_rate)),
            ];
            if p {
                row.push(Cell::new(m.p_gap_vs_random.map_or_else(|| "—".to_string(), p_value)));
            }
            row
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
    let ivs = m.intervals.as_ref();
    let deltas = [
        ("self Δ vs base (pp)", &m.self_delta, ivs.map(|i| &i.self_delta)),
        ("cross Δ vs base (pp)", &m.cross_delta, ivs.map(|i| &i.cross_delta)),
    ];
    for (label, map, cis) in deltas {
        let label = if ivs.is_some() { format!("{label} [{}]", ci_label(s)) } else { label.to_string() };
        let mut row = vec![Cell::new(label)];
        row.extend(s.groups.iter().map(|g| Cell::new(pp_ci(map.get(g).copied(), cis.and_then(|c| c.get(g))))));
        rows.push(row);
    }
    Table { header, rows }
}

/// What the band tables show.
pub(crate) fn bands_note(s: &Summary) -> String {
    format!(
        "Each band of layers (0-based) ablated on its own: every culture's set cut to the band. Δ of {} in \
         percentage points, averaged over cultures; set size = neurons left in the band, mean over cultures.",
        s.metric.label()
    )
}

/// One method's bands: band × (mean set size, mean self Δ, mean cross Δ, gap).
pub(crate) fn bands_table(bands: &[BandResult]) -> Table {
    let header = ["band", "mean set size", "mean self Δ (pp)", "mean cross Δ (pp)", "gap (pp)"];
    let rows = bands
        .iter()
        .map(|b| {
            vec![
                Cell::new(layers_label(b.layers)),
                Cell::new(dec1(b.mean_set_size)),
                Cell::new(pp(b.mean_self_delta)),
                Cell::new(pp(b.mean_cross_delta)),
                Cell::new(pp(b.gap)),
            ]
        })
        .collect();
    Table { header: header.into_iter().map(Cell::new).collect(), rows }
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

/// The complete `report.md`. `figures` (and the steering sections' figures) are paths relative to the
/// report directory (PNG files).
pub(crate) fn markdown(
    s: &Summary,
    x: &ReportExtras,
    figures: &[(String, String)],
    steering: &[steer::Section<'_>],
) -> String {
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
    if let Some(note) = significance_note(s) {
        let _ = writeln!(md, "{}\n", md_escape(&note));
    }
    md.push_str(&table_md(&methods_table(s)));
    for (name, m) in &s.methods {
        let _ = writeln!(md, "\n## Ablation matrix: {} (k = {})\n", md_escape(name), m.k);
        let _ = writeln!(md, "{} The diagonal (self) is in bold.\n", matrix_note(s));
        md.push_str(&table_md(&matrix_table(s, m)));
    }
    let _ = writeln!(md, "\n## Neurons per layer\n");
    let _ = writeln!(md, "Selected neurons per layer (0-based), counted per culture and summed over cultures.\n");
    md.push_str(&table_md(&neurons_table(s, x)));
    if !s.bands.is_empty() {
        let _ = writeln!(md, "\n## Which band matters\n");
        let _ = writeln!(md, "{}", md_escape(&bands_note(s)));
        for (name, bands) in &s.bands {
            let _ = writeln!(md, "\n### {}\n", md_escape(name));
            md.push_str(&table_md(&bands_table(bands)));
        }
    }
    if !steering.is_empty() {
        let _ = writeln!(md, "\n## Steering (dose–response)");
        for sec in steering {
            let r = sec.result;
            let _ = writeln!(md, "\n### {}\n", md_escape(&steer::heading(r)));
            let _ = writeln!(md, "{}\n", md_escape(&steer::note(r)));
            md.push_str(&table_md(&steer::steer_table(r)));
            if let Some((title, path)) = &sec.figure {
                let _ = writeln!(md, "\n![{}]({})", md_escape(title), path);
            }
        }
    }
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
pub(crate) fn csv_num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => String::new(),
    }
}

/// `methods.csv`: method,k,mean_self_delta,mean_cross_delta,gap,flip_rate (fractions),
/// set_size_min,set_size_max, then the intervals gap_low,gap_high,self_low,self_high (fractions)
/// and p_gap_vs_random (empty when not computed; appended so older readers keep working).
pub(crate) fn methods_csv(s: &Summary) -> String {
    let mut out = String::from(
        "method,k,mean_self_delta,mean_cross_delta,gap,flip_rate,set_size_min,set_size_max,\
         gap_low,gap_high,self_low,self_high,p_gap_vs_random\n",
    );
    for (name, m) in &s.methods {
        let nums = [m.mean_self_delta, m.mean_cross_delta, m.gap, m.flip_rate].map(|v| csv_num(Some(v)));
        let (lo, hi) = m.set_size_range();
        let ivs = m.intervals.as_ref();
        let bounds = [ivs.map(|i| i.gap), ivs.map(|i| i.mean_self_delta)];
        let bounds = bounds.map(|b| [csv_num(b.map(|b| b[0])), csv_num(b.map(|b| b[1]))].join(","));
        let _ = writeln!(
            out,
            "{},{},{},{lo},{hi},{},{}",
            csv_field(name),
            m.k,
            nums.join(","),
            bounds.join(","),
            csv_num(m.p_gap_vs_random)
        );
    }
    out
}

/// `bands.csv`: method,first_layer,end_layer (band [first, end)),mean_set_size and the band's mean
/// self Δ, mean cross Δ and gap (fractions).
pub(crate) fn bands_csv(s: &Summary) -> String {
    let mut out = String::from("method,first_layer,end_layer,mean_set_size,mean_self_delta,mean_cross_delta,gap\n");
    for (name, bands) in &s.bands {
        for b in bands {
            let nums = [b.mean_set_size, b.mean_self_delta, b.mean_cross_delta, b.gap].map(|v| csv_num(Some(v)));
            let _ = writeln!(out, "{},{},{},{}", csv_field(name), b.layers[0], b.layers[1], nums.join(","));
        }
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
