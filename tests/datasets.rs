//! Dataset readers on the synthetic mini-CVQA set (assets/data/mini-cvqa/test.parquet:
//! 300 rows, 5 cultures x 60) and on small files written here.

use std::fs;
use std::path::{Path, PathBuf};

use culturelens::eval::dataset::{group, load_examples, parse_subset, DatasetError, GroupBy, JsonlRow, Lang};
use culturelens::eval::example::McExample;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
const CULTURES: [(&str, &str); 5] =
    [("Japanese", "Japan"), ("Swahili", "Kenya"), ("Spanish", "Mexico"), ("Hindi", "India"), ("Irish", "Ireland")];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/data/mini-cvqa/test.parquet")
}

fn mini(lang: Lang) -> Vec<McExample> {
    load_examples(&fixture(), lang).expect("mini-CVQA loads")
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn mini_cvqa_counts_first_row_and_images() {
    let en = mini(Lang::En);
    assert_eq!(en.len(), 300);
    let e = &en[0];
    assert_eq!(e.id, "ja_JP_test_pattern_0012");
    assert_eq!((e.language.as_str(), e.country.as_str()), ("Japanese", "Japan"));
    assert_eq!(e.question, "In Japan, which dish is traditionally served on a cloth with this pattern?");
    assert_eq!(e.options, s(&["rice", "bread", "soup", "fruit"]));
    assert_eq!(e.label, Some(2));
    assert_eq!(e.category, "Cooking and food");
    for (i, ex) in en.iter().enumerate() {
        let img = ex.image.as_ref().unwrap_or_else(|| panic!("row {i} has no image"));
        assert!(img.starts_with(PNG), "row {i} ({}) is not a PNG", ex.id);
        assert_eq!(ex.options.len(), 4);
        assert!(ex.label.is_some_and(|l| l < 4));
    }
    // 60 per culture, in culture order, labels balanced 15/15/15/15 per culture.
    for (k, (lang, country)) in CULTURES.iter().enumerate() {
        let rows = &en[k * 60..(k + 1) * 60];
        assert!(rows.iter().all(|r| r.language == *lang && r.country == *country), "{country}");
        let mut labels = [0; 4];
        rows.iter().for_each(|r| labels[r.label.unwrap()] += 1);
        assert_eq!(labels, [15; 4], "{country}");
    }
    let ids: std::collections::HashSet<_> = en.iter().map(|e| &e.id).collect();
    assert_eq!(ids.len(), 300);
}

#[test]
fn mini_cvqa_native_language() {
    let en = mini(Lang::En);
    let na = mini(Lang::Native);
    assert_eq!(na.len(), 300);
    assert_eq!(na[0].question, "日本では、この模様の布の上で伝統的に出される料理はどれですか？");
    assert_eq!(na[0].options, s(&["ご飯", "パン", "スープ", "果物"]));
    for (a, b) in en.iter().zip(&na) {
        // Same rows, same labels, same images; only the text differs.
        assert_eq!((&a.id, a.label, &a.image, &a.category), (&b.id, b.label, &b.image, &b.category));
        assert_eq!(a.options.len(), b.options.len());
    }
    assert!(en.iter().zip(&na).filter(|(a, b)| a.question != b.question).count() == 300);
}

#[test]
fn grouping_by_country_language_pair() {
    let en = mini(Lang::En);
    let g = group(en.clone(), GroupBy::Country, 0, None, None).unwrap();
    assert_eq!(g.names, s(&["Japan", "Kenya", "Mexico", "India", "Ireland"]));
    assert_eq!(g.counts(), vec![60; 5]);
    assert!(g.skipped.is_empty());
    assert!(g.examples.iter().all(|(k, e)| e.country == g.names[*k]));
    // Input order is kept.
    assert_eq!(
        g.examples.iter().map(|(_, e)| e.id.clone()).collect::<Vec<_>>(),
        en.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    );

    let g = group(en.clone(), GroupBy::Language, 0, None, None).unwrap();
    assert_eq!(g.names, s(&["Japanese", "Swahili", "Spanish", "Hindi", "Irish"]));
    let g = group(en, GroupBy::Pair, 0, None, None).unwrap();
    assert_eq!(g.names[0], "Japanese/Japan");
    assert_eq!(g.names[4], "Irish/Ireland");
}

#[test]
fn grouping_min_only_limit() {
    let mut en = mini(Lang::En);
    // Drop 50 Kenyan rows: Kenya keeps 10.
    let mut dropped = 0;
    en.retain(|e| {
        !(e.country == "Kenya" && {
            dropped += 1;
            dropped <= 50
        })
    });
    assert_eq!(en.len(), 250);
    let g = group(en.clone(), GroupBy::Country, 20, None, None).unwrap();
    assert_eq!(g.names, s(&["Japan", "Mexico", "India", "Ireland"]));
    assert_eq!(g.skipped, vec![("Kenya".to_string(), 10)]);
    assert_eq!(g.examples.len(), 240);
    assert!(g.examples.iter().all(|(k, e)| e.country == g.names[*k]));

    let only = s(&["Ireland", "Japan"]);
    let g = group(en.clone(), GroupBy::Country, 0, Some(&only), Some(7)).unwrap();
    assert_eq!(g.names, s(&["Japan", "Ireland"])); // first-appearance order
    assert_eq!(g.counts(), vec![7, 7]);
    let first_irish: Vec<_> = en.iter().filter(|e| e.country == "Ireland").take(7).map(|e| e.id.clone()).collect();
    let got: Vec<_> = g.examples.iter().filter(|(k, _)| *k == 1).map(|(_, e)| e.id.clone()).collect();
    assert_eq!(got, first_irish);

    // min counts rows before limit; only + min together.
    let only = s(&["Kenya", "India"]);
    let g = group(en.clone(), GroupBy::Country, 20, Some(&only), Some(5)).unwrap();
    assert_eq!(g.names, s(&["India"]));
    assert_eq!(g.skipped, vec![("Kenya".to_string(), 10)]);
    assert_eq!(g.examples.len(), 5);

    let bad = s(&["Japan", "Atlantis"]);
    let err = group(en, GroupBy::Country, 0, Some(&bad), None).unwrap_err();
    assert!(matches!(err, DatasetError::UnknownGroup { ref name, .. } if name == "Atlantis"));
    let msg = err.to_string();
    assert!(msg.contains("Atlantis") && msg.contains("Japan"), "{msg}");
}

#[test]
fn directory_of_shards() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(fixture(), dir.path().join("b-00001.parquet")).unwrap();
    fs::copy(fixture(), dir.path().join("a-00000.parquet")).unwrap();
    fs::write(dir.path().join("README.md"), "not a shard").unwrap();
    let all = load_examples(dir.path(), Lang::En).unwrap();
    assert_eq!(all.len(), 600);
    let one = mini(Lang::En);
    assert_eq!(&all[..300], &one[..]);
    assert_eq!(&all[300..], &one[..]);

    let empty = tempfile::tempdir().unwrap();
    let err = load_examples(empty.path(), Lang::En).unwrap_err();
    assert!(matches!(err, DatasetError::NoShards { .. }), "{err}");
}

fn write_jsonl(dir: &Path, rows: &[McExample]) -> PathBuf {
    fs::create_dir_all(dir.join("img")).unwrap();
    let mut text = String::new();
    for ex in rows {
        let image = ex.image.as_ref().map(|bytes| {
            let rel = format!("img/{}.png", ex.id);
            fs::write(dir.join(&rel), bytes).unwrap();
            rel
        });
        let row = JsonlRow {
            id: ex.id.clone(),
            language: ex.language.clone(),
            country: ex.country.clone(),
            question: ex.question.clone(),
            options: ex.options.clone(),
            label: ex.label.map(|l| l as i64),
            image,
            category: Some(ex.category.clone()),
        };
        text.push_str(&serde_json::to_string(&row).unwrap());
        text.push('\n');
    }
    let p = dir.join("data.jsonl");
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn jsonl_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = mini(Lang::Native);
    rows[3].image = None; // a row without an image survives too
    let p = write_jsonl(dir.path(), &rows);
    let back = load_examples(&p, Lang::En).unwrap();
    assert_eq!(back, rows);

    // Minimal hand-written line: no image, no category; blank lines are ignored.
    let p = dir.path().join("min.jsonl");
    fs::write(&p, "\n{\"id\":\"x1\",\"language\":\"Irish\",\"country\":\"Ireland\",\"question\":\"q?\",\"options\":[\"a\",\"b\",\"c\",\"d\"],\"label\":3}\n\n").unwrap();
    let v = load_examples(&p, Lang::En).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].label, v[0].image.is_none(), v[0].category.as_str()), (Some(3), true, ""));
}

fn jsonl_err(body: &str) -> (DatasetError, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.jsonl");
    fs::write(&p, body).unwrap();
    let err = load_examples(&p, Lang::En).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bad.jsonl"), "message names the file: {msg}");
    (err, msg)
}

const OK_LINE: &str =
    r#"{"id":"ok","language":"L","country":"C","question":"q","options":["a","b","c","d"],"label":0}"#;

#[test]
fn jsonl_errors() {
    let (err, msg) = jsonl_err(&format!(
        "{OK_LINE}\n{}\n",
        r#"{"id":"r7","language":"L","country":"C","question":"q","options":["a","b","c","d"],"label":7}"#
    ));
    assert!(matches!(err, DatasetError::LabelOutOfRange { label: 7, n_options: 4, .. }), "{err:?}");
    assert!(msg.contains("r7") && msg.contains("line 2"), "{msg}");

    let (err, msg) =
        jsonl_err(r#"{"id":"three","language":"L","country":"C","question":"q","options":["a","b","c"],"label":0}"#);
    assert!(matches!(err, DatasetError::TooFewOptions { n_options: 3, .. }), "{err:?}");
    assert!(msg.contains("three"), "{msg}");

    let (err, msg) = jsonl_err(&format!("{OK_LINE}\n{OK_LINE}\n{{\"id\": \"broken\"\n"));
    assert!(matches!(err, DatasetError::Jsonl { line: 3, .. }), "{err:?}");
    assert!(msg.contains("bad.jsonl:3"), "{msg}");

    let (err, msg) = jsonl_err(&format!(
        "{OK_LINE}\n{}\n",
        r#"{"id":"neg","language":"L","country":"C","question":"q","options":["a","b","c","d"],"label":-2}"#
    ));
    assert!(matches!(err, DatasetError::LabelOutOfRange { label: -2, .. }), "{err:?}");
    assert!(msg.contains("neg"), "{msg}");

    let (err, msg) = jsonl_err(&format!(
        "{OK_LINE}\n{}\n",
        r#"{"id":"i","language":"L","country":"C","question":"q","options":["a","b","c","d"],"label":1,"image":"nope/missing.png"}"#
    ));
    assert!(matches!(err, DatasetError::MissingImage { ref row, .. } if row.contains("line 2")), "{err:?}");
    assert!(msg.contains("missing.png") && msg.contains("line 2"), "{msg}");
}

#[test]
fn missing_file_and_unsupported() {
    let err = load_examples(Path::new("/nonexistent/cvqa/test.parquet"), Lang::En).unwrap_err();
    assert!(matches!(err, DatasetError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/cvqa/test.parquet"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    fs::write(&p, "hello").unwrap();
    assert!(matches!(load_examples(&p, Lang::En).unwrap_err(), DatasetError::Unsupported { .. }));
    // A .parquet file that is not parquet.
    let p = dir.path().join("junk.parquet");
    fs::write(&p, "not parquet at all").unwrap();
    let err = load_examples(&p, Lang::En).unwrap_err();
    assert!(matches!(err, DatasetError::Parquet { .. }), "{err:?}");
    assert!(err.to_string().contains("junk.parquet"));
}

#[test]
fn subset_strings() {
    let p = |x: &str| parse_subset(x);
    let pair = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
    assert_eq!(p("('Japanese', 'Japan')"), pair("Japanese", "Japan"));
    assert_eq!(p("  ( 'Irish' ,'Ireland' )  "), pair("Irish", "Ireland"));
    assert_eq!(p(r#"("Ma'di", 'Uganda')"#), pair("Ma'di", "Uganda"));
    assert_eq!(p(r#"('Ma\'di', "Côte d'Ivoire")"#), pair("Ma'di", "Côte d'Ivoire"));
    assert_eq!(p(r#"('a\\b', 'x\ty\u00e9\x41')"#), pair("a\\b", "x\tyéA"));
    assert_eq!(p("('Japanese', 'Japan',)"), pair("Japanese", "Japan"));
    for bad in [
        "",
        "Japanese, Japan",
        "('Japanese')",
        "('Japanese', 'Japan'",
        "('Japanese', 'Japan') extra",
        "('Japanese', 'Japan', 'Tokyo')",
        "('Japanese, 'Japan')",
        "(Japanese, Japan)",
        r#"('a\x4', 'b')"#,
    ] {
        assert_eq!(p(bad), None, "{bad:?}");
    }
}

#[path = "datasets/cvqa_writer.rs"]
mod cvqa_writer;
use cvqa_writer as write;

fn row<'a>(id: &'a str, subset: &'a str, options: Vec<&'a str>, label: i64, image: Option<&'a [u8]>) -> write::Row<'a> {
    write::Row { id, subset, question: "Which?", options, label, image }
}

#[test]
fn parquet_written_here_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("small.parquet");
    let img: &[u8] = b"\x89PNG\r\n\x1a\nfake";
    write::cvqa(
        &p,
        &[
            row("a1", "('Japanese', 'Japan')", vec!["w", "x", "y", "z"], 3, Some(img)),
            row("a2", r#"("Ma'di", 'Uganda')"#, vec!["w", "x", "y", "z", "v"], 4, None),
        ],
        None,
    );
    let v = load_examples(&p, Lang::En).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].image.as_deref(), Some(img));
    assert_eq!((v[0].label, v[0].category.as_str()), (Some(3), "")); // no Category column: empty
    assert_eq!(v[1].image, None); // null image kept as None
    assert_eq!((v[1].language.as_str(), v[1].country.as_str(), v[1].options.len()), ("Ma'di", "Uganda", 5));
}

fn parquet_err(rows: &[write::Row], omit: Option<&str>, lang: Lang) -> (DatasetError, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.parquet");
    write::cvqa(&p, rows, omit);
    let err = load_examples(&p, lang).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bad.parquet"), "message names the file: {msg}");
    (err, msg)
}

#[test]
fn parquet_errors() {
    let ok = || row("ok1", "('Irish', 'Ireland')", vec!["a", "b", "c", "d"], 0, None);
    // The English-only file lacks the native columns.
    let (err, _) = parquet_err(&[ok()], None, Lang::Native);
    assert!(matches!(err, DatasetError::MissingColumn { ref column, .. } if column == "Question"), "{err:?}");
    let (err, _) = parquet_err(&[ok()], Some("image"), Lang::En);
    assert!(matches!(err, DatasetError::MissingColumn { ref column, .. } if column == "image"), "{err:?}");

    let (err, msg) =
        parquet_err(&[ok(), row("bad_sub", "Japanese/Japan", vec!["a", "b", "c", "d"], 0, None)], None, Lang::En);
    assert!(matches!(err, DatasetError::BadSubset { .. }), "{err:?}");
    assert!(msg.contains("bad_sub") && msg.contains("Japanese/Japan"), "{msg}");

    let (err, msg) =
        parquet_err(&[ok(), row("lab7", "('Irish', 'Ireland')", vec!["a", "b", "c", "d"], 7, None)], None, Lang::En);
    assert!(matches!(err, DatasetError::LabelOutOfRange { label: 7, .. }), "{err:?}");
    assert!(msg.contains("lab7"), "{msg}");

    let (err, msg) = parquet_err(&[row("three", "('Irish', 'Ireland')", vec!["a", "b", "c"], 0, None)], None, Lang::En);
    assert!(matches!(err, DatasetError::TooFewOptions { n_options: 3, .. }), "{err:?}");
    assert!(msg.contains("three"), "{msg}");
}

/// What the pipeline does with rows whose image is missing or undecodable: an error naming the
/// row, before any statistics are written.
#[test]
fn pipeline_rows_without_or_with_broken_images() {
    use culturelens::pipeline::data::DataOptions;
    use culturelens::pipeline::model::CultureModel;
    let dir = tempfile::tempdir().unwrap();
    let png = fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_vl-tiny/image.png")).unwrap();
    let opts = |p: &Path| DataOptions {
        data: p.display().to_string(),
        split: None,
        group_by: GroupBy::Country,
        lang: Lang::En,
        min_per_group: 1,
        groups: None,
        limit: None,
        inputs: Default::default(),
        rows: None,
    };
    let missing = dir.path().join("missing.parquet");
    write::cvqa(
        &missing,
        &[
            row("jp1", "('Japanese', 'Japan')", vec!["a", "b", "c", "d"], 0, Some(&png)),
            row("ie1", "('Irish', 'Ireland')", vec!["a", "b", "c", "d"], 1, None),
        ],
        None,
    );
    let msg = format!("{:#}", opts(&missing).load().err().expect("a row without an image is an error"));
    assert!(msg.contains("missing.parquet") && msg.contains("ie1") && msg.contains("no image"), "{msg}");

    let broken = dir.path().join("broken.parquet");
    write::cvqa(
        &broken,
        &[
            row("jp1", "('Japanese', 'Japan')", vec!["a", "b", "c", "d"], 0, Some(&png)),
            row("ie1", "('Irish', 'Ireland')", vec!["a", "b", "c", "d"], 1, Some(b"\x89PNG\r\n\x1a\ntruncated")),
        ],
        None,
    );
    let sel = opts(&broken).load().unwrap();
    let gpu = culturelens::gpu::Gpu::new(&Default::default()).unwrap();
    let model_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/culture-tiny-qwen2_5_vl");
    let model = CultureModel::load(&gpu, model_dir.to_str().unwrap(), 4).unwrap();
    let msg =
        format!("{:#}", model.prepare(&sel.grouped.examples).err().expect("undecodable image bytes are an error"));
    assert!(msg.contains("ie1"), "{msg}");
}
