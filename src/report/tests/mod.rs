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

/// Optional data: intervals, p-values, run details, bands, the share figure and steering.
mod optional;
