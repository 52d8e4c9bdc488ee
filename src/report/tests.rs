//! Tests of the report writer on a worked example and on degenerate inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::*;

const JP: &str = "日本";
const ODD: &str = "x<&>\"y";
const BR: &str = "Brazil, South";

fn map(keys: &[&str], vals: &[f64]) -> BTreeMap<String, f64> {
    keys.iter().zip(vals).map(|(k, v)| (k.to_string(), *v)).collect()
}

/// 3 groups (one non-ASCII, one with `<&>"`, one with a comma) and 2 methods.
fn example() -> (Summary, ReportExtras) {
    let groups = [JP, ODD, BR];
    let base = [0.8, 0.5, 0.625];
    let cas_matrix = vec![vec![0.717, 0.5, 0.625], vec![0.8, 0.375, 0.6], vec![0.79, 0.5, 0.5]];
    let lape_matrix = vec![vec![0.75, 0.45, 0.625], vec![0.8, 0.5, 0.625], vec![0.8, 0.5, 0.6]];
    let method = |k, matrix: Vec<Vec<f64>>, npl: Vec<usize>| {
        let self_d: Vec<f64> = (0..3).map(|g| matrix[g][g] - base[g]).collect();
        let cross_d: Vec<f64> =
            (0..3).map(|e| (0..3).filter(|&a| a != e).map(|a| matrix[a][e] - base[e]).sum::<f64>() / 2.0).collect();
        let ms = self_d.iter().sum::<f64>() / 3.0;
        let mc = cross_d.iter().sum::<f64>() / 3.0;
        MethodSummary {
            k,
            set_sizes: BTreeMap::new(),
            self_delta: map(&groups, &self_d),
            cross_delta: map(&groups, &cross_d),
            mean_self_delta: ms,
            mean_cross_delta: mc,
            gap: ms - mc,
            flip_rate: 0.125,
            neurons_per_layer: npl,
            matrix,
            kept: Vec::new(),
            prob_drop: Vec::new(),
            intervals: None,
            p_gap_vs_random: None,
        }
    };
    let s = Summary {
        model: "Qwen2.5-VL-3B <test> & co".into(),
        dataset: "mini-cvqa".into(),
        position_rule: "last_token".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        metric: Metric::Accuracy,
        base_accuracy: map(&groups, &base),
        methods: [
            ("cas".to_string(), method(10, cas_matrix, vec![3, 0, 12, 15])),
            ("lape".to_string(), method(10, lape_matrix, vec![0, 5, 10, 15])),
        ]
        .into_iter()
        .collect(),
        significance: None,
        layer_band: None,
        bands: BTreeMap::new(),
        evaluation: None,
    };
    let x = ReportExtras {
        neurons_per_layer_per_group: [
            ("cas".to_string(), vec![vec![1, 0, 4, 5], vec![1, 0, 4, 5], vec![1, 0, 4, 5]]),
            ("lape".to_string(), vec![vec![0, 2, 3, 5], vec![0, 1, 4, 5], vec![0, 2, 3, 5]]),
        ]
        .into_iter()
        .collect(),
        mode: "zero".into(),
        examples_per_group: vec![120, 64, 40],
        labelled_per_group: vec![120, 64, 40],
        notes: vec!["note with <b>markup</b> & 'quotes'".into()],
        layer_width: 0,
        weighting: String::new(),
    };
    (s, x)
}

const METHODS_CSV_HEADER: [&str; 13] = [
    "method",
    "k",
    "mean_self_delta",
    "mean_cross_delta",
    "gap",
    "flip_rate",
    "set_size_min",
    "set_size_max",
    "gap_low",
    "gap_high",
    "self_low",
    "self_high",
    "p_gap_vs_random",
];

fn pp_expected(frac: f64) -> String {
    format!("{:+.1}", frac * 100.0)
}

fn rel(out: &Path, files: &[PathBuf]) -> BTreeSet<String> {
    files.iter().map(|p| p.strip_prefix(out).unwrap().to_string_lossy().replace('\\', "/")).collect()
}

/// Minimal PNG validation: signature, IHDR with non-zero size, every chunk CRC, IDAT present, IEND last.
fn check_png(path: &Path) -> (u32, u32) {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let data = fs::read(path).unwrap();
    assert!(data.len() > 8 && data[..8] == [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A], "{path:?}");
    let (mut pos, mut size, mut idat, mut last) = (8usize, (0, 0), false, Vec::new());
    while pos + 12 <= data.len() {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &data[pos + 4..pos + 8];
        let body = &data[pos + 8..pos + 8 + len];
        let crc = u32::from_be_bytes(data[pos + 8 + len..pos + 12 + len].try_into().unwrap());
        assert_eq!(crc, crc32(&data[pos + 4..pos + 8 + len]), "bad CRC in {path:?}");
        if kind == b"IHDR" {
            size = (
                u32::from_be_bytes(body[0..4].try_into().unwrap()),
                u32::from_be_bytes(body[4..8].try_into().unwrap()),
            );
        }
        idat |= kind == b"IDAT";
        last = kind.to_vec();
        pos += 12 + len;
    }
    assert_eq!(pos, data.len(), "trailing bytes in {path:?}");
    assert!(idat && last == b"IEND", "{path:?}");
    assert!(size.0 > 0 && size.1 > 0, "{path:?}");
    size
}

fn assert_json_close(a: &serde_json::Value, b: &serde_json::Value) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{x} != {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).for_each(|(x, y)| assert_json_close(x, y));
        }
        (Value::Object(x), Value::Object(y)) => {
            assert!(x.keys().eq(y.keys()));
            x.values().zip(y.values()).for_each(|(x, y)| assert_json_close(x, y));
        }
        _ => assert_eq!(a, b),
    }
}

fn read_csv(path: &Path) -> Vec<Vec<String>> {
    // Small RFC 4180 reader (quoted fields, doubled quotes).
    let text = fs::read_to_string(path).unwrap();
    let mut rows = Vec::new();
    for line in text.lines() {
        let (mut row, mut field, mut quoted, mut chars) = (Vec::new(), String::new(), false, line.chars().peekable());
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => row.push(std::mem::take(&mut field)),
                _ => field.push(c),
            }
        }
        row.push(field);
        rows.push(row);
    }
    rows
}

fn assert_clean_outputs(out: &Path, files: &[PathBuf]) {
    for f in files {
        assert!(f.exists(), "{f:?}");
        let name = f.to_string_lossy();
        if name.ends_with(".png") {
            check_png(f);
        } else {
            let text = fs::read_to_string(f).unwrap();
            let bad =
                text.split(|c: char| !c.is_alphanumeric()).any(|t| matches!(t, "NaN" | "nan" | "inf" | "Infinity"));
            assert!(!bad, "non-finite value in {f:?}");
        }
    }
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!html.contains("http"), "external reference in report.html");
    assert!(!html.to_lowercase().contains("<script"));
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    assert_eq!(html.matches("<table").count(), html.matches("</table>").count());
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
}

#[test]
fn worked_example() {
    let (s, x) = example();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let files = write_report(&out, &s, &x, &[]).unwrap();

    let expected: BTreeSet<String> = [
        "summary.json",
        "report.md",
        "report.html",
        "methods.csv",
        "matrix_cas.csv",
        "matrix_lape.csv",
        "neurons_per_layer.csv",
        "figures/neurons_per_layer.png",
        "figures/neurons_per_layer.svg",
        "figures/heatmap_cas.png",
        "figures/heatmap_cas.svg",
        "figures/heatmap_lape.png",
        "figures/heatmap_lape.svg",
        "figures/methods.png",
        "figures/methods.svg",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(rel(&out, &files), expected);
    assert_clean_outputs(&out, &files);

    // summary.json: exact schema keys and lossless round trip.
    let text = fs::read_to_string(out.join("summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>();
    let set = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(keys(&v), set(&["model", "dataset", "position_rule", "groups", "metric", "base_accuracy", "methods"]));
    assert_eq!(v["metric"], "accuracy");
    assert_eq!(keys(&v["methods"]), set(&["cas", "lape"]));
    let method_keys = [
        "k",
        "set_sizes",
        "self_delta",
        "cross_delta",
        "mean_self_delta",
        "mean_cross_delta",
        "gap",
        "flip_rate",
        "neurons_per_layer",
        "matrix",
    ];
    assert_eq!(keys(&v["methods"]["cas"]), set(&method_keys));
    let back: Summary = serde_json::from_str(&text).unwrap();
    // serde_json writes the shortest round-trip repr; its default parser may be off by one ulp, hence the tolerance.
    assert_json_close(&serde_json::to_value(&back).unwrap(), &serde_json::to_value(&s).unwrap());
    assert!(text.contains("0.717") && text.contains("\"x<&>\\\"y\""), "{text}");
    assert_eq!(back.groups, s.groups);
    assert_eq!(back.methods["cas"].matrix, s.methods["cas"].matrix);

    // methods.csv: fractions, one row per method.
    let rows = read_csv(&out.join("methods.csv"));
    assert_eq!(rows[0], METHODS_CSV_HEADER);
    assert_eq!(rows.len(), 3);
    for (row, (name, m)) in rows[1..].iter().zip(&s.methods) {
        assert_eq!(row[0], *name);
        assert_eq!(row[1], m.k.to_string());
        let nums: Vec<f64> = row[2..8].iter().map(|v| v.parse().unwrap()).collect();
        let k = m.k as f64;
        assert_eq!(nums, [m.mean_self_delta, m.mean_cross_delta, m.gap, m.flip_rate, k, k], "no sizes: all sets of k");
        assert_eq!(row[8..], ["", "", "", "", ""], "no intervals, no p-value");
    }

    // matrix_<method>.csv: every (ablated, evaluated) pair with base, accuracy and delta.
    for (name, m) in &s.methods {
        let rows = read_csv(&out.join(format!("matrix_{name}.csv")));
        assert_eq!(rows[0], ["ablated", "evaluated", "base_accuracy", "accuracy", "delta"]);
        assert_eq!(rows.len(), 1 + 9);
        for (i, row) in rows[1..].iter().enumerate() {
            let (a, e) = (i / 3, i % 3);
            assert_eq!(row[0], s.groups[a]);
            assert_eq!(row[1], s.groups[e]);
            let base = s.base_accuracy[&s.groups[e]];
            let nums: Vec<f64> = row[2..].iter().map(|v| v.parse().unwrap()).collect();
            assert_eq!(nums, [base, m.matrix[a][e], m.matrix[a][e] - base]);
        }
    }
    let raw = fs::read_to_string(out.join("matrix_cas.csv")).unwrap();
    assert!(raw.contains("\"x<&>\"\"y\",\"Brazil, South\",0.625,0.6,"), "{raw}");

    // neurons_per_layer.csv: per-group rows + aggregate rows.
    let rows = read_csv(&out.join("neurons_per_layer.csv"));
    assert_eq!(rows[0], ["method", "group", "layer", "count"]);
    assert_eq!(rows.len(), 1 + 2 * (3 * 4 + 4));
    assert!(rows.contains(&vec!["lape".into(), ODD.into(), "2".into(), "4".into()]));
    assert!(rows.contains(&vec!["cas".into(), "(all)".into(), "3".into(), "15".into()]));
    let per_group_sum: usize = rows[1..]
        .iter()
        .filter(|r| r[0] == "cas" && r[1] != "(all)" && r[2] == "2")
        .map(|r| r[3].parse::<usize>().unwrap())
        .sum();
    assert_eq!(per_group_sum, 12);

    // report.md: header, pp numbers computed from the inputs, bold diagonal, escapes.
    let md = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("Qwen2.5-VL-3B \\<test\\> \\& co"));
    assert!(md.contains("mini-cvqa") && md.contains("last\\_token") && md.contains("zero"));
    assert!(md.contains("| 日本 | 120 | 80.0 |"), "{md}");
    assert!(md.contains("| x\\<\\&\\>\"y | 64 | 50.0 |"), "{md}");
    for (name, m) in &s.methods {
        let row = format!(
            "| {name} | {} | {} | {} | {} | 12.5 |",
            m.k,
            pp_expected(m.mean_self_delta),
            pp_expected(m.mean_cross_delta),
            pp_expected(m.gap)
        );
        assert!(md.contains(&row), "missing {row}\n{md}");
        let self_row: Vec<String> = s.groups.iter().map(|g| pp_expected(m.self_delta[g])).collect();
        assert!(md.contains(&format!("| self Δ vs base (pp) | {} |", self_row.join(" | "))), "{md}");
        let cross_row: Vec<String> = s.groups.iter().map(|g| pp_expected(m.cross_delta[g])).collect();
        assert!(md.contains(&format!("| cross Δ vs base (pp) | {} |", cross_row.join(" | "))), "{md}");
    }
    // Hand-checked values of the cas matrix: self Δ of 日本 = 71.7 - 80.0 = -8.3 pp.
    assert!(md.contains("| 日本 | **71.7** | 50.0 | 62.5 |"), "{md}");
    assert!(md.contains("| x\\<\\&\\>\"y | 80.0 | **37.5** | 60.0 |"), "{md}");
    assert!(md.contains("| self Δ vs base (pp) | -8.3 | -12.5 | -12.5 |"), "{md}");
    assert!(md.contains("| cas | 10 | -11.1 | -0.6 | -10.5 | 12.5 |"), "{md}");
    assert!(md.contains("| 3 | 15 | 15 |") && md.contains("| **total** | **30** | **30** |"), "{md}");
    assert!(md.contains("![Δ accuracy heatmap: cas](figures/heatmap_cas.png)"));
    assert!(md.contains("note with \\<b\\>markup\\</b\\> \\& 'quotes'"));

    // report.html: escaped data, inline SVGs, same numbers.
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!html.contains(ODD) && !html.contains("<test>") && !html.contains("<b>markup"));
    assert!(html.contains("x&lt;&amp;&gt;&quot;y") && html.contains("日本"));
    assert!(html.contains("note with &lt;b&gt;markup&lt;/b&gt; &amp; &#39;quotes&#39;"));
    assert_eq!(html.matches("<svg").count(), 4);
    assert!(html.contains("<td class=\"diag\"><strong>71.7</strong></td>"));
    assert!(html.contains("<td>-11.1</td><td>-0.6</td><td>-10.5</td><td>12.5</td>"), "{html}");
    assert!(html.contains("<meta charset=\"utf-8\">"));
}

fn flat_summary(groups: usize, layers: usize, methods: &[&str], base: f64) -> (Summary, ReportExtras) {
    let names: Vec<String> = (0..groups).map(|g| format!("culture-{g} 文化")).collect();
    let base_accuracy: BTreeMap<String, f64> = names.iter().map(|g| (g.clone(), base)).collect();
    let zeros: BTreeMap<String, f64> = names.iter().map(|g| (g.clone(), 0.0)).collect();
    let m = MethodSummary {
        k: 5,
        set_sizes: BTreeMap::new(),
        self_delta: zeros.clone(),
        cross_delta: zeros,
        mean_self_delta: 0.0,
        mean_cross_delta: 0.0,
        gap: 0.0,
        flip_rate: 0.0,
        neurons_per_layer: vec![0; layers],
        matrix: vec![vec![base; groups]; groups],
        kept: Vec::new(),
        prob_drop: Vec::new(),
        intervals: None,
        p_gap_vs_random: None,
    };
    let s = Summary {
        model: "m".into(),
        dataset: "d".into(),
        position_rule: "r".into(),
        groups: names,
        metric: Metric::Accuracy,
        base_accuracy,
        methods: methods.iter().map(|n| (n.to_string(), m.clone())).collect(),
        significance: None,
        layer_band: None,
        bands: BTreeMap::new(),
        evaluation: None,
    };
    let x = ReportExtras {
        neurons_per_layer_per_group: methods.iter().map(|n| (n.to_string(), vec![vec![0; layers]; groups])).collect(),
        mode: "mean".into(),
        examples_per_group: vec![0; groups],
        labelled_per_group: vec![0; groups],
        notes: vec![],
        layer_width: 0,
        weighting: String::new(),
    };
    (s, x)
}

#[test]
fn all_zero_deltas() {
    let (s, x) = flat_summary(3, 4, &["cas", "lape", "lap", "mad"], 0.5);
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(dir.path(), &s, &x, &[]).unwrap();
    assert_eq!(files.iter().filter(|f| f.extension().is_some_and(|e| e == "png")).count(), 6);
    assert_clean_outputs(dir.path(), &files);
    let md = fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("| cas | 5 | +0.0 | +0.0 | +0.0 | 0.0 |"), "{md}");
    assert!(!md.contains("-0.0"));
}

#[test]
fn one_group_one_layer() {
    let (s, x) = flat_summary(1, 1, &["mad"], 1.0);
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(dir.path(), &s, &x, &[]).unwrap();
    assert_clean_outputs(dir.path(), &files);
    let (w, h) = check_png(&dir.path().join("figures/heatmap_mad.png"));
    assert!(w >= 100 && h >= 100);
    check_png(&dir.path().join("figures/neurons_per_layer.png"));
}

#[test]
fn many_groups_many_layers_and_missing_values() {
    let (mut s, x) = flat_summary(40, 80, &["cas", "lape", "lap", "mad"], 0.5);
    for (i, m) in s.methods.values_mut().enumerate() {
        m.neurons_per_layer = (0..80).map(|l| (l * (i + 1)) % 17).collect();
        for (a, row) in m.matrix.iter_mut().enumerate() {
            for (e, v) in row.iter_mut().enumerate() {
                *v = 0.5 - 0.004 * ((a + 2 * e) % 7) as f64 - if a == e { 0.1 } else { 0.0 };
            }
        }
    }
    // Non-finite and missing inputs must not leak "NaN" into any output.
    let cas = s.methods.get_mut("cas").unwrap();
    cas.matrix[0][1] = f64::NAN;
    cas.matrix[3].truncate(10);
    cas.flip_rate = f64::NAN;
    s.base_accuracy.remove(&s.groups[5]);
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(dir.path(), &s, &x, &[]).unwrap();
    assert_clean_outputs(dir.path(), &files);
    let md = fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("n/a"));
}

#[test]
fn no_methods() {
    let (s, x) = flat_summary(2, 3, &[], 0.5);
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(dir.path(), &s, &x, &[]).unwrap();
    assert_clean_outputs(dir.path(), &files);
}

#[test]
fn method_names_become_safe_unique_stems() {
    let (mut s, _) = flat_summary(1, 1, &["a/b", "a b", ""], 0.5);
    s.methods.insert("ok-1".into(), s.methods[""].clone());
    assert_eq!(method_stems(&s), ["method", "a_b", "a_b_2", "ok-1"]);
}

#[test]
fn font_registers() {
    ensure_font().unwrap();
    ensure_font().unwrap();
}

// ---------------------------------------------------------------------------------------------------------------
// Optional data: intervals, p-values, run details, bands, the share figure and steering.

/// `example()` with every optional field filled: intervals and a p-value for cas, a p-value only for
/// lape, a random control without either, a layer band, an evaluation split, bands and the width.
fn rich_example() -> (Summary, ReportExtras) {
    let (mut s, mut x) = example();
    let intervals = Intervals {
        self_delta: map(&[JP, ODD, BR], &[-0.10, -0.15, -0.2]).into_iter().map(|(g, v)| (g, [v, v + 0.04])).collect(),
        cross_delta: map(&[JP, ODD], &[-0.02, -0.01]).into_iter().map(|(g, v)| (g, [v, v + 0.03])).collect(),
        mean_self_delta: [-0.14, -0.082],
        mean_cross_delta: [-0.02, 0.01],
        gap: [-0.13, -0.079],
    };
    let cas = s.methods.get_mut("cas").unwrap();
    cas.intervals = Some(intervals);
    cas.p_gap_vs_random = Some(0.0004);
    s.methods.get_mut("lape").unwrap().p_gap_vs_random = Some(0.01234);
    let random = s.methods["lape"].clone();
    s.methods.insert("random".into(), MethodSummary { p_gap_vs_random: None, ..random });
    x.neurons_per_layer_per_group.insert("random".into(), x.neurons_per_layer_per_group["lape"].clone());
    s.significance = Some(Significance { level: 0.95, resamples: 1000, permutations: 0, seed: 42, random_draws: 20 });
    s.layer_band = Some([4, 12]);
    s.evaluation = Some(Evaluation {
        identify_fraction: 0.5,
        seed: 7,
        cross_fit: true,
        identify_rows: [(JP, 60), (ODD, 32), (BR, 20)].into_iter().map(|(g, n)| (g.to_string(), n)).collect(),
        evaluate_rows: [(JP, 60), (ODD, 32), (BR, 20)].into_iter().map(|(g, n)| (g.to_string(), n)).collect(),
    });
    let band = |layers, mean_set_size, mean_self_delta, mean_cross_delta| BandResult {
        layers,
        mean_set_size,
        mean_self_delta,
        mean_cross_delta,
        gap: mean_self_delta - mean_cross_delta,
    };
    s.bands.insert("cas".into(), vec![band([0, 2], 4.5, -0.1, -0.02), band([3, 4], 2.0, -0.25, 0.0)]);
    x.layer_width = 10;
    x.weighting = "example".into();
    (s, x)
}

/// 3 cultures, `ODD` steered over an unsorted sweep, one confidence missing (no labels).
fn steer_example() -> SteerResult {
    SteerResult {
        model: "m".into(),
        dataset: "d".into(),
        method: "cas".into(),
        culture: ODD.into(),
        set_size: 10,
        groups: [JP, ODD, BR].map(String::from).to_vec(),
        metric: Metric::Accuracy,
        scales: vec![1.0, 0.0, 2.5],
        values: vec![vec![0.8, 0.5, 0.625], vec![0.79, 0.25, 0.6], vec![0.8, 0.3, 0.625]],
        kept: vec![vec![1.0, 1.0, 1.0], vec![0.9, 0.5, 0.95], vec![1.0, 0.75, 1.0]],
        confidence: vec![vec![0.7, 0.45, f64::NAN], vec![0.69, 0.2, f64::NAN], vec![0.7, 0.3, f64::NAN]],
        base: vec![0.8, 0.5, 0.625],
    }
}

#[test]
fn optional_sections_are_absent_without_their_data() {
    let (s, x) = example();
    let dir = tempfile::tempdir().unwrap();
    write_report(dir.path(), &s, &x, &[]).unwrap();
    let md = fs::read_to_string(dir.path().join("report.md")).unwrap();
    let html = fs::read_to_string(dir.path().join("report.html")).unwrap();
    for text in [&md, &html] {
        for absent in [
            "p (gap vs random)",
            "95% CI",
            "bootstrap",
            "layer band",
            "evaluation split",
            "identify rows",
            "neuron weighting",
            "resampling seed",
            "LM neurons per layer",
            "Which band matters",
            "Steering",
            "% of the layer",
        ] {
            assert!(!text.contains(absent), "unexpected {absent:?}");
        }
    }
    assert!(!dir.path().join("bands.csv").exists());
    assert!(!dir.path().join("figures/neurons_per_layer_share.png").exists());
}

#[test]
fn intervals_and_p_values_render_in_the_methods_and_matrix_tables() {
    let (s, x) = rich_example();
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(dir.path(), &s, &x, &[]).unwrap();
    assert_clean_outputs(dir.path(), &files);
    let md = fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains(
            "| method | k | mean self Δ (pp) \\[95% CI\\] | mean cross Δ (pp) | gap (pp) \\[95% CI\\] | flip rate (%) | \
             p (gap vs random) |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| cas | 10 | -11.1 \\[-14.0, -8.2\\] | -0.6 | -10.5 \\[-13.0, -7.9\\] | 12.5 | \\<0.001 |"),
        "{md}"
    );
    assert!(md.contains("| lape | 10 | -2.5 | -0.8 | -1.7 | 12.5 | 0.012 |"), "{md}");
    assert!(md.contains("| random | 10 | -2.5 | -0.8 | -1.7 | 12.5 | — |"), "{md}");
    // Per-culture intervals; a culture without one shows the bare Δ.
    assert!(
        md.contains("| self Δ vs base (pp) \\[95% CI\\] | -8.3 \\[-10.0, -6.0\\] | -12.5 \\[-15.0, -11.0\\] | -12.5 \\[-20.0, -16.0\\] |"),
        "{md}"
    );
    assert!(
        md.contains("| cross Δ vs base (pp) \\[95% CI\\] | -0.5 \\[-2.0, +1.0\\] | +0.0 \\[-1.0, +2.0\\] | -1.3 |"),
        "{md}"
    );
    assert!(md.contains("| self Δ vs base (pp) | -5.0 | +0.0 | -2.5 |"), "lape has no intervals\n{md}");
    assert!(md.contains("percentile bootstrap intervals over the examples, resampled within each culture"));
    assert!(md.contains("two-sided permutation test of (gap − random gap) that exchanges each culture's set with the random control's draws for it"));

    let html = fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains(
        "<td>-11.1 [-14.0, -8.2]</td><td>-0.6</td><td>-10.5 [-13.0, -7.9]</td><td>12.5</td><td>&lt;0.001</td>"
    ));
    assert!(html.contains("<th>p (gap vs random)</th>") && html.contains("two-sided permutation test"));

    // methods.csv: the appended columns hold full-precision fractions, empty where absent.
    let rows = read_csv(&dir.path().join("methods.csv"));
    assert_eq!(rows[0], METHODS_CSV_HEADER);
    assert_eq!(rows[1][0], "cas");
    assert_eq!(rows[1][8..], ["-0.13", "-0.079", "-0.14", "-0.082", "0.0004"]);
    assert_eq!(rows[2][0], "lape");
    assert_eq!(rows[2][8..], ["", "", "", "", "0.01234"]);
    assert_eq!(rows[3][0], "random");
    assert_eq!(rows[3][8..], ["", "", "", "", ""]);
}

#[test]
fn run_details_render_in_the_info_and_groups_tables() {
    let (s, x) = rich_example();
    let dir = tempfile::tempdir().unwrap();
    write_report(dir.path(), &s, &x, &[]).unwrap();
    let md = fs::read_to_string(dir.path().join("report.md")).unwrap();
    for row in [
        "| LM neurons per layer | 10 |",
        "| layer band (sets cut to it) | layers 4–11 |",
        "| neuron weighting | example: every question weighs the same |",
        "| evaluation split | identify on 50.0 % of each culture's rows, evaluate on the rest |",
        "| split seed | 7 |",
        "| cross-fit | yes: parts swapped, every row scored under the sets of the other part |",
        "| rows identify / evaluate | 112 / 112 (all cultures, first fold) |",
        "| intervals | 95% CI, 1000 bootstrap resamples |",
        "| gap test permutations | exact: every label assignment enumerated |",
        "| random control draws | 20 |",
        "| resampling seed | 42 |",
        "| group | examples | base accuracy (%) | identify rows | evaluate rows |",
        "| 日本 | 120 | 80.0 | 60 | 60 |",
        "| Brazil, South | 40 | 62.5 | 20 | 20 |",
    ] {
        assert!(md.contains(row), "missing {row}\n{md}");
    }
    let html = fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<th scope=\"row\">layer band (sets cut to it)</th><td>layers 4–11</td>"), "{html}");
}

#[test]
fn token_weighting_and_sampled_permutations_are_named() {
    let (mut s, mut x) = rich_example();
    x.weighting = "token".into();
    s.significance.as_mut().unwrap().permutations = 5000;
    s.significance.as_mut().unwrap().random_draws = 0;
    s.layer_band = Some([7, 8]);
    let md = tables::table_md(&tables::info_table(&s, &x));
    assert!(md.contains("| neuron weighting | token: every token weighs the same |"), "{md}");
    assert!(md.contains("| gap test permutations | 5000 random label assignments |"), "{md}");
    assert!(md.contains("| random control draws | none (no random control) |"), "{md}");
    assert!(md.contains("| layer band (sets cut to it) | layer 7 |"), "{md}");
}

#[test]
fn bands_render_and_bands_csv_is_written() {
    let (s, x) = rich_example();
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(dir.path(), &s, &x, &[]).unwrap();
    assert!(files.contains(&dir.path().join("bands.csv")));
    assert_eq!(
        fs::read_to_string(dir.path().join("bands.csv")).unwrap(),
        "method,first_layer,end_layer,mean_set_size,mean_self_delta,mean_cross_delta,gap\n\
         cas,0,2,4.5,-0.1,-0.02,-0.08\n\
         cas,3,4,2,-0.25,0,-0.25\n"
    );
    let md = fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("## Which band matters") && md.contains("### cas"), "{md}");
    assert!(md.contains("| band | mean set size | mean self Δ (pp) | mean cross Δ (pp) | gap (pp) |"), "{md}");
    assert!(md.contains("| layers 0–1 | 4.5 | -10.0 | -2.0 | -8.0 |"), "{md}");
    assert!(md.contains("| layer 3 | 2.0 | -25.0 | +0.0 | -25.0 |"), "{md}");
    let html = fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<h2>Which band matters</h2>") && html.contains("<h3>cas</h3>"));
    assert!(html.contains("<th scope=\"row\">layers 0–1</th><td>4.5</td><td>-10.0</td><td>-2.0</td><td>-8.0</td>"));
}

#[test]
fn layer_share_figure_needs_the_layer_width() {
    // cas, layer 3: 15 neurons over 3 cultures of 10-neuron layers = 50 % of each layer.
    assert_eq!(figures::layer_share(15, 10, 3), 50.0);
    assert_eq!(figures::layer_share(3, 4096, 1), 3.0 / 4096.0 * 100.0);
    let (s, x) = rich_example();
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(dir.path(), &s, &x, &[]).unwrap();
    let names = rel(dir.path(), &files);
    assert!(
        names.contains("figures/neurons_per_layer_share.png") && names.contains("figures/neurons_per_layer_share.svg")
    );
    check_png(&dir.path().join("figures/neurons_per_layer_share.png"));
    let svg = fs::read_to_string(dir.path().join("figures/neurons_per_layer_share.svg")).unwrap();
    assert!(svg.contains("Selected neurons per layer, % of the layer"), "{svg}");
    let md = fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("![Selected neurons per layer, % of the layer's width](figures/neurons_per_layer_share.png)"));
}

#[test]
fn write_steer_writes_the_csv_and_the_figure() {
    let r = steer_example();
    let dir = tempfile::tempdir().unwrap();
    let files = write_steer(dir.path(), &r).unwrap();
    let names = rel(dir.path(), &files);
    let expected = ["steer_cas_x____y.csv", "figures/steer_cas_x____y.png", "figures/steer_cas_x____y.svg"];
    assert_eq!(names, expected.into_iter().map(String::from).collect());
    check_png(&dir.path().join("figures/steer_cas_x____y.png"));
    let svg = fs::read_to_string(dir.path().join("figures/steer_cas_x____y.svg")).unwrap();
    assert!(svg.contains("(steered)") && svg.contains("Brazil, South"), "{svg}");

    let rows = read_csv(&dir.path().join("steer_cas_x____y.csv"));
    assert_eq!(rows[0], ["scale", "group", "value", "kept", "confidence"]);
    assert_eq!(rows.len(), 1 + 3 * 3);
    assert_eq!(rows[1], ["1", JP, "0.8", "1", "0.7"]);
    assert_eq!(rows[5], ["0", ODD, "0.25", "0.5", "0.2"]);
    assert_eq!(rows[9], ["2.5", BR, "0.625", "1", ""], "NaN confidence is left empty");
}

#[test]
fn steering_sections_render_in_the_report() {
    let (s, x) = example();
    let mut other = steer_example();
    other.method = "lape".into();
    let steer = [steer_example(), other];
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(dir.path(), &s, &x, &steer).unwrap();
    assert_clean_outputs(dir.path(), &files);
    let names = rel(dir.path(), &files);
    for f in [
        "steer_cas_x____y.csv",
        "steer_lape_x____y.csv",
        "figures/steer_cas_x____y.png",
        "figures/steer_cas_x____y.svg",
        "figures/steer_lape_x____y.png",
        "figures/steer_lape_x____y.svg",
    ] {
        assert!(names.contains(f), "missing {f}: {names:?}");
    }
    let md = fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("## Steering (dose–response)"), "{md}");
    assert!(md.contains("### cas: the x\\<\\&\\>\"y set (10 neurons) scaled"), "{md}");
    assert!(md.contains("### lape: the x\\<\\&\\>\"y set (10 neurons) scaled"), "{md}");
    assert!(md.contains("| scale | 日本 | **x\\<\\&\\>\"y** | Brazil, South |"), "{md}");
    assert!(md.contains("| base (unscaled) | 80.0 | **50.0** | 62.5 |"), "{md}");
    assert!(md.contains("| × 0 | 79.0 | **25.0** | 60.0 |"), "{md}");
    assert!(md.contains("| × 2.5 | 80.0 | **30.0** | 62.5 |"), "{md}");
    assert!(md.contains("](figures/steer_cas_x____y.png)") && md.contains("](figures/steer_lape_x____y.png)"), "{md}");
    // The steering figures sit in their sections, not in the general figure list.
    let figures_at = md.find("## Figures").unwrap();
    assert!(md.find("figures/steer_cas_x____y.png").unwrap() < figures_at);

    let html = fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<h2>Steering (dose–response)</h2>"));
    assert!(html.contains("<th><strong>x&lt;&amp;&gt;&quot;y</strong></th>"), "{html}");
    assert!(html
        .contains("<th scope=\"row\">× 0</th><td>79.0</td><td class=\"diag\"><strong>25.0</strong></td><td>60.0</td>"));
    assert_eq!(html.matches("<svg").count(), 4 + 2);
}

#[test]
fn steer_results_load_sorted_and_a_bad_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load_steer_results(dir.path()).unwrap().is_empty());
    assert!(load_steer_results(&dir.path().join("missing")).unwrap().is_empty());
    let mut a = steer_example();
    a.culture = JP.into();
    // Written the way the pipeline writes it: the NaN confidences become null.
    fs::write(dir.path().join("steer_b.json"), serde_json::to_string_pretty(&steer_example()).unwrap()).unwrap();
    fs::write(dir.path().join("steer_a.json"), serde_json::to_string_pretty(&a).unwrap()).unwrap();
    fs::write(dir.path().join("summary.json"), "not a steering result").unwrap();
    fs::write(dir.path().join("steer_b.csv"), "not json").unwrap();
    let loaded = load_steer_results(dir.path()).unwrap();
    assert_eq!(loaded.iter().map(|r| r.culture.as_str()).collect::<Vec<_>>(), [JP, ODD]);
    assert_eq!(loaded[1].values, steer_example().values);
    assert!(loaded[1].confidence[0][2].is_nan() && loaded[1].confidence[0][1] == 0.45);

    fs::write(dir.path().join("steer_c.json"), "{\"model\": ").unwrap();
    let err = format!("{:#}", load_steer_results(dir.path()).unwrap_err());
    assert!(err.contains("steer_c.json"), "{err}");
}
