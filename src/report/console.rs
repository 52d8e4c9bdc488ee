//! The plain-text tables `pipeline` and `steer` print on the terminal.

use std::fmt::Write as _;

use super::summary::{SteerResult, Summary};

/// One line per method: mean self and cross Δ in points, gap with its 95 % interval, the
/// p-value against the random control, flip rate.
pub fn summary_text(s: &Summary) -> String {
    let mut out = format!(
        "{:<9} {:>4} {:>7} {:>8} {:>8} {:>8} {:>17} {:>8} {:>6}\n",
        "method", "k", "sets", "self Δ", "cross Δ", "gap", "gap 95% CI", "p", "flips"
    );
    for (name, m) in &s.methods {
        let (lo, hi) = m.set_size_range();
        let sets = if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") };
        let ci = m
            .intervals
            .as_ref()
            .map_or(String::new(), |i| format!("[{:+.1}, {:+.1}]", 100.0 * i.gap[0], 100.0 * i.gap[1]));
        let p = m.p_gap_vs_random.map_or(String::new(), |p| format!("{p:.4}"));
        let _ = writeln!(
            out,
            "{name:<9} {:>4} {sets:>7} {:>+8.1} {:>+8.1} {:>+8.1} {ci:>17} {p:>8} {:>5.1}%",
            m.k,
            100.0 * m.mean_self_delta,
            100.0 * m.mean_cross_delta,
            100.0 * m.gap,
            100.0 * m.flip_rate
        );
    }
    out
}

/// The sweep: one row per scale, the metric per culture in % (* marks the steered culture).
pub fn steer_text(r: &SteerResult) -> String {
    let mut out = format!("{:>7}", "scale");
    for g in &r.groups {
        let mark = if *g == r.culture { "*" } else { "" };
        let _ = write!(out, " {:>10}", format!("{mark}{g}"));
    }
    out.push('\n');
    for (s, row) in r.scales.iter().zip(&r.values) {
        let _ = write!(out, "{s:>7}");
        for v in row {
            let _ = write!(out, " {:>9.1}%", 100.0 * v);
        }
        out.push('\n');
    }
    let _ =
        writeln!(out, "({} of each culture; * the culture whose {} neurons were scaled)", r.metric.label(), r.set_size);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::report::{Intervals, MethodSummary, Metric};

    #[test]
    fn summary_line_carries_the_interval_and_p() {
        let named = |v: f64| BTreeMap::from([("A".to_string(), v), ("B".to_string(), v)]);
        let m = MethodSummary {
            k: 3,
            set_sizes: BTreeMap::from([("A".into(), 2), ("B".into(), 3)]),
            self_delta: named(-0.1),
            cross_delta: named(-0.02),
            mean_self_delta: -0.1,
            mean_cross_delta: -0.02,
            gap: -0.08,
            flip_rate: 0.05,
            neurons_per_layer: vec![5],
            matrix: vec![],
            kept: vec![],
            prob_drop: vec![],
            intervals: Some(Intervals {
                self_delta: BTreeMap::new(),
                cross_delta: BTreeMap::new(),
                mean_self_delta: [-0.2, 0.0],
                mean_cross_delta: [-0.05, 0.01],
                gap: [-0.125, -0.031],
            }),
            p_gap_vs_random: Some(0.0048828125),
        };
        let s = Summary {
            model: "m".into(),
            dataset: "d".into(),
            position_rule: "all".into(),
            groups: vec!["A".into(), "B".into()],
            metric: Metric::Accuracy,
            base_accuracy: named(0.9),
            methods: BTreeMap::from([("cas".to_string(), m)]),
            significance: None,
            layer_band: None,
            bands: BTreeMap::new(),
            evaluation: None,
        };
        let text = summary_text(&s);
        let line = text.lines().nth(1).unwrap();
        assert_eq!(line, "cas          3     2-3    -10.0     -2.0     -8.0     [-12.5, -3.1]   0.0049   5.0%");
    }

    #[test]
    fn steer_table_marks_the_steered_culture() {
        let r = SteerResult {
            model: "m".into(),
            dataset: "d".into(),
            method: "cas".into(),
            culture: "B".into(),
            set_size: 4,
            groups: vec!["A".into(), "B".into()],
            metric: Metric::Accuracy,
            scales: vec![0.0, 2.0],
            values: vec![vec![0.5, 0.25], vec![1.0, 0.75]],
            kept: vec![],
            confidence: vec![],
            base: vec![0.5, 0.5],
        };
        let want = "  scale          A         *B\n      0      50.0%      25.0%\n      2     100.0%      75.0%\n\
                    (accuracy of each culture; * the culture whose 4 neurons were scaled)\n";
        assert_eq!(steer_text(&r), want);
    }
}
