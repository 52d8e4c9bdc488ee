//! The report's optional parts on a worked example: intervals, p-values, run details, bands,
//! the layer-share figure and steering.

use std::fs;

use super::*;

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
