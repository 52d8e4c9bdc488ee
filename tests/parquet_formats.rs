//! CVQA parquet as the ecosystem writes it, written here with the `parquet` crate's Arrow writer
//! (what pyarrow and `datasets` produce: an Arrow schema, dictionary pages, row groups): every
//! codec, list and large_list, string and large_string, the image as struct {bytes, path} (with
//! `path` resolved next to the file when `bytes` is null) or as plain binary, hidden labels, the
//! hub's folder layouts with `--split`, and the errors for what cannot be read.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::builder::{LargeListBuilder, LargeStringBuilder, ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, BinaryArray, Float64Array, Int64Array, LargeStringArray, RecordBatch, StringArray, StructArray,
};
use arrow_schema::{DataType, Field, Fields, Schema};
use culturelens::eval::dataset::{load_examples, load_split, DatasetError, Lang};
use culturelens::eval::McExample;
use parquet::arrow::ArrowWriter;
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// One row before writing: (ID, Subset, question, options, label, image bytes).
struct Source {
    id: &'static str,
    subset: &'static str,
    question: &'static str,
    options: Vec<&'static str>,
    label: Option<i64>,
    image: &'static [u8],
}

fn rows() -> Vec<Source> {
    let r = |id, subset, question, options: Vec<&'static str>, label, image| Source {
        id,
        subset,
        question,
        options,
        label,
        image,
    };
    vec![
        r("ja_1", "('Japanese', 'Japan')", "Which dish?", vec!["rice", "bread", "soup", "fruit"], Some(2), b"png-1"),
        r("ja_2", "('Japanese', 'Japan')", "Which dish?", vec!["rice", "bread", "soup", "fruit"], Some(0), b"png-2"),
        r("sw_1", "('Swahili', 'Kenya')", "Which place?", vec!["a", "b", "c", "d", "e"], Some(4), b"png-3"),
        r("ga_1", "(\"Irish\", 'Ireland')", "Cé?", vec!["w", "x", "y", "z"], Some(1), b"png-4"),
        r("ga_2", "('Irish', 'Ireland')", "Which?", vec!["w", "x", "y", "z"], Some(3), b"png-5"),
        r("es_1", "('Spanish', 'Mexico')", "¿Cuál?", vec!["uno", "dos", "tres", "cuatro"], Some(1), b"png-6"),
        r("es_2", "('Spanish', 'Mexico')", "¿Cuál?", vec!["uno", "dos", "tres", "cuatro"], Some(2), b"png-7"),
    ]
}

/// How the image column is written.
#[derive(Clone, Copy, Debug)]
enum ImageColumn {
    /// datasets' Image feature: struct {bytes, path}.
    Struct,
    /// The bytes left null; `path` names a file beside the parquet file.
    PathOnly,
    /// A plain binary column.
    Binary,
}

#[derive(Clone, Copy, Debug)]
struct Variant {
    compression: Compression,
    dictionary: bool,
    row_group: usize,
    large: bool,
    image: ImageColumn,
}

fn string_list(large: bool, lists: Vec<Vec<&str>>) -> ArrayRef {
    if large {
        let mut b = LargeListBuilder::new(LargeStringBuilder::new());
        for l in lists {
            l.iter().for_each(|s| b.values().append_value(s));
            b.append(true);
        }
        Arc::new(b.finish())
    } else {
        let mut b = ListBuilder::new(StringBuilder::new());
        for l in lists {
            l.iter().for_each(|s| b.values().append_value(s));
            b.append(true);
        }
        Arc::new(b.finish())
    }
}

fn strings(large: bool, v: Vec<&str>) -> ArrayRef {
    if large {
        Arc::new(LargeStringArray::from(v))
    } else {
        Arc::new(StringArray::from(v))
    }
}

/// Writes `rows` as a CVQA file at `path` (images beside it for `PathOnly`).
fn write(path: &Path, rows: &[Source], v: Variant) {
    let large = v.large;
    let image: ArrayRef = match v.image {
        ImageColumn::Binary => Arc::new(BinaryArray::from_iter_values(rows.iter().map(|r| r.image))),
        ImageColumn::Struct | ImageColumn::PathOnly => {
            let with_bytes = matches!(v.image, ImageColumn::Struct);
            let bytes: BinaryArray = rows.iter().map(|r| with_bytes.then_some(r.image)).collect();
            let names: Vec<String> = rows.iter().map(|r| format!("images/{}.png", r.id)).collect();
            if !with_bytes {
                fs::create_dir_all(path.parent().unwrap().join("images")).unwrap();
                for (r, n) in rows.iter().zip(&names) {
                    fs::write(path.parent().unwrap().join(n), r.image).unwrap();
                }
            }
            let fields = Fields::from(vec![
                Field::new("bytes", DataType::Binary, true),
                Field::new("path", DataType::Utf8, true),
            ]);
            let paths: ArrayRef = Arc::new(StringArray::from(names.iter().map(String::as_str).collect::<Vec<_>>()));
            Arc::new(StructArray::new(fields, vec![Arc::new(bytes), paths], None))
        }
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("image", image),
        ("ID", strings(large, rows.iter().map(|r| r.id).collect())),
        ("Subset", strings(large, rows.iter().map(|r| r.subset).collect())),
        ("Translated Question", strings(large, rows.iter().map(|r| r.question).collect())),
        ("Translated Options", string_list(large, rows.iter().map(|r| r.options.clone()).collect())),
        ("Label", Arc::new(Int64Array::from(rows.iter().map(|r| r.label).collect::<Vec<_>>()))),
        ("Category", strings(large, rows.iter().map(|_| "Food").collect())),
    ];
    write_batch(path, columns, v);
}

fn write_batch(path: &Path, columns: Vec<(&str, ArrayRef)>, v: Variant) {
    let schema = Arc::new(Schema::new(
        columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    let props = WriterProperties::builder()
        .set_compression(v.compression)
        .set_dictionary_enabled(v.dictionary)
        .set_max_row_group_row_count(Some(v.row_group))
        .build();
    let mut w = ArrowWriter::try_new(fs::File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn expected() -> Vec<McExample> {
    rows()
        .into_iter()
        .map(|r| {
            let (language, country) = culturelens::eval::dataset::parse_subset(r.subset).unwrap();
            McExample {
                id: r.id.into(),
                language,
                country,
                question: r.question.into(),
                options: r.options.iter().map(|s| s.to_string()).collect(),
                label: r.label.map(|l| l as usize),
                image: Some(r.image.to_vec()),
                category: "Food".into(),
            }
        })
        .collect()
}

const PLAIN: Variant = Variant {
    compression: Compression::SNAPPY,
    dictionary: true,
    row_group: 1 << 20,
    large: false,
    image: ImageColumn::Struct,
};

#[test]
fn every_codec_encoding_row_group_size_and_column_type_reads_back() {
    let codecs = [
        Compression::UNCOMPRESSED,
        Compression::SNAPPY,
        Compression::ZSTD(ZstdLevel::try_new(3).unwrap()),
        Compression::GZIP(GzipLevel::default()),
        Compression::LZ4,
        Compression::LZ4_RAW,
        Compression::BROTLI(BrotliLevel::default()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for compression in codecs {
        for (dictionary, row_group, large) in [(true, 1 << 20, false), (false, 3, true), (true, 1, true)] {
            for image in [ImageColumn::Struct, ImageColumn::PathOnly, ImageColumn::Binary] {
                let v = Variant { compression, dictionary, row_group, large, image };
                let sub = dir.path().join(format!("v{n}"));
                fs::create_dir_all(&sub).unwrap();
                let p = sub.join("cvqa.parquet");
                write(&p, &rows(), v);
                let got = load_examples(&p, Lang::En).unwrap_or_else(|e| panic!("{v:?}: {e}"));
                assert_eq!(got, expected(), "{v:?}");
                n += 1;
            }
        }
    }
    assert_eq!(n, 63);
}

#[test]
fn hidden_labels_are_kept_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = rows();
    src[1].label = Some(-1);
    src[2].label = None;
    let p = dir.path().join("hidden.parquet");
    write(&p, &src, PLAIN);
    let got = load_examples(&p, Lang::En).unwrap();
    assert_eq!(
        got.iter().map(|e| e.label).collect::<Vec<_>>(),
        [Some(2), None, None, Some(1), Some(3), Some(1), Some(2)]
    );
    // No Label column at all: every row hidden.
    let p = dir.path().join("no_label.parquet");
    let r = rows();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("image", Arc::new(BinaryArray::from_iter_values(r.iter().map(|r| r.image))) as ArrayRef),
        ("ID", strings(false, r.iter().map(|r| r.id).collect())),
        ("Subset", strings(false, r.iter().map(|r| r.subset).collect())),
        ("Translated Question", strings(false, r.iter().map(|r| r.question).collect())),
        ("Translated Options", string_list(false, r.iter().map(|r| r.options.clone()).collect())),
    ];
    write_batch(&p, columns, PLAIN);
    assert!(load_examples(&p, Lang::En).unwrap().iter().all(|e| e.label.is_none()));
}

/// Writes the rows as `rel` (creating folders) under `root`.
fn shard(root: &Path, rel: &str) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    write(&p, &rows()[..2], PLAIN);
    p
}

#[test]
fn hub_layouts_and_split_choice() {
    let ids = |dir: &Path, split: Option<&str>| load_split(dir, split, Lang::En).map(|v| v.len());
    // data/<split>-NNNNN-of-NNNNN.parquet (CVQA's own layout).
    let d = tempfile::tempdir().unwrap();
    shard(d.path(), "data/test-00000-of-00002.parquet");
    shard(d.path(), "data/test-00001-of-00002.parquet");
    shard(d.path(), "data/train-00000-of-00001.parquet");
    assert_eq!(ids(d.path(), None).unwrap(), 4);
    assert_eq!(ids(d.path(), Some("train")).unwrap(), 2);
    let e = ids(d.path(), Some("validation")).unwrap_err();
    assert!(matches!(e, DatasetError::NoSplit { .. }), "{e}");
    assert!(e.to_string().contains("test (2 files), train (1 file)"), "{e}");

    // <split>/*.parquet, and the hub's converted <config>/<split>/*.parquet.
    let d = tempfile::tempdir().unwrap();
    shard(d.path(), "test/0000.parquet");
    shard(d.path(), "validation/0000.parquet");
    shard(d.path(), "validation/0001.parquet");
    assert_eq!(ids(d.path(), None).unwrap(), 2);
    assert_eq!(ids(d.path(), Some("validation")).unwrap(), 4);
    let d = tempfile::tempdir().unwrap();
    shard(d.path(), "default/test/0000.parquet");
    shard(d.path(), "default/train/0000.parquet");
    assert_eq!(ids(d.path(), None).unwrap(), 2);
    shard(d.path(), "extra/test/0000.parquet");
    let e = ids(d.path(), None).unwrap_err();
    assert!(
        matches!(e, DatasetError::AmbiguousSplit { .. }) && e.to_string().contains("default/test, extra/test"),
        "{e}"
    );
    assert_eq!(ids(d.path(), Some("extra/test")).unwrap(), 2);

    // A folder of unnamed shards is its only split; two named splits and no test ask for a choice.
    let d = tempfile::tempdir().unwrap();
    shard(d.path(), "part-0.parquet");
    shard(d.path(), "part-1.parquet");
    assert_eq!(ids(d.path(), None).unwrap(), 4);
    let d = tempfile::tempdir().unwrap();
    shard(d.path(), "train/0.parquet");
    shard(d.path(), "validation/0.parquet");
    let e = ids(d.path(), None).unwrap_err();
    assert!(matches!(e, DatasetError::ChooseSplit { .. }) && e.to_string().contains("--split"), "{e}");
    // Hidden folders (the hub cache's .cache) are not splits.
    let d = tempfile::tempdir().unwrap();
    shard(d.path(), "data/test-00000-of-00001.parquet");
    shard(d.path(), ".cache/x/test.parquet");
    assert_eq!(ids(d.path(), None).unwrap(), 2);
}

fn load_err(p: &Path) -> String {
    let e = load_examples(p, Lang::En).unwrap_err().to_string();
    assert!(e.contains(p.file_name().unwrap().to_str().unwrap()), "the error names the file: {e}");
    e
}

#[test]
fn what_cannot_be_read_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let r = rows();
    let base = |image: ArrayRef| -> Vec<(&str, ArrayRef)> {
        vec![
            ("image", image),
            ("ID", strings(false, r.iter().map(|r| r.id).collect())),
            ("Subset", strings(false, r.iter().map(|r| r.subset).collect())),
            ("Translated Question", strings(false, r.iter().map(|r| r.question).collect())),
        ]
    };
    let image = || Arc::new(BinaryArray::from_iter_values(r.iter().map(|r| r.image))) as ArrayRef;

    // Options that are not a list of strings.
    let p = dir.path().join("int_options.parquet");
    let mut cols = base(image());
    let mut b = arrow_array::builder::ListBuilder::new(arrow_array::builder::Int64Builder::new());
    for _ in &r {
        (0..4).for_each(|k| b.values().append_value(k));
        b.append(true);
    }
    cols.push(("Translated Options", Arc::new(b.finish())));
    write_batch(&p, cols, PLAIN);
    let e = load_err(&p);
    assert!(e.contains("`Translated Options`") && e.contains("a list of strings"), "{e}");

    // A Label of floating point type.
    let p = dir.path().join("float_label.parquet");
    let mut cols = base(image());
    cols.push(("Translated Options", string_list(false, r.iter().map(|r| r.options.clone()).collect())));
    cols.push(("Label", Arc::new(Float64Array::from(vec![1.0; r.len()]))));
    write_batch(&p, cols, PLAIN);
    let e = load_err(&p);
    assert!(e.contains("`Label`") && e.contains("DOUBLE") && e.contains("integer"), "{e}");

    // A missing required column.
    let p = dir.path().join("no_options.parquet");
    write_batch(&p, base(image()), PLAIN);
    let e = load_err(&p);
    assert!(e.contains("missing column `Translated Options`"), "{e}");

    // An image path whose file is not there.
    let sub = dir.path().join("paths");
    fs::create_dir_all(&sub).unwrap();
    let p = sub.join("cvqa.parquet");
    write(&p, &rows(), Variant { image: ImageColumn::PathOnly, ..PLAIN });
    fs::remove_file(sub.join("images/ga_1.png")).unwrap();
    let e = load_err(&p);
    assert!(e.contains("ga_1") && e.contains("images/ga_1.png"), "{e}");

    // A codec this build does not decode (LZO): the footer's codec of `Label` is patched.
    let p = dir.path().join("lzo.parquet");
    write(&p, &rows(), Variant { compression: Compression::UNCOMPRESSED, dictionary: false, ..PLAIN });
    let mut bytes = fs::read(&p).unwrap();
    // ColumnMetaData: path_in_schema = ["Label"] (list of 1 binary), then codec (i32, zigzag).
    let pattern = [&[0x18u8, 0x05][..], b"Label", &[0x15, 0x00]].concat();
    let at = bytes.windows(pattern.len()).rposition(|w| w == pattern).expect("Label's column metadata");
    *bytes.get_mut(at + pattern.len() - 1).unwrap() = 0x06; // LZO = 3
    fs::write(&p, bytes).unwrap();
    let e = load_err(&p);
    assert!(e.contains("Label") && e.contains("LZO") && e.contains("row group 0"), "{e}");
}

/// Through the binary: a split that does not exist is an error that lists what there is, exit 1,
/// and nothing written.
#[test]
fn collect_names_a_missing_split_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    shard(d.path(), "data/test-00000-of-00001.parquet");
    let out = d.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_culturelens"))
        .args(["collect", "--data", d.path().to_str().unwrap(), "--split", "dev", "--out", out.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no split `dev`") && err.contains("test (1 file)") && !err.contains("panicked"), "{err}");
    assert!(!out.exists());
}

/// Writes loaded rows back as CVQA parquet, with `label` deciding each row's label.
fn write_examples(path: &Path, rows: &[McExample], label: impl Fn(usize, &McExample) -> Option<i64>) {
    let subsets: Vec<String> = rows.iter().map(|e| format!("('{}', '{}')", e.language, e.country)).collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("image", Arc::new(BinaryArray::from_iter_values(rows.iter().map(|e| e.image.as_deref().unwrap())))),
        ("ID", strings(false, rows.iter().map(|e| e.id.as_str()).collect())),
        ("Subset", strings(false, subsets.iter().map(String::as_str).collect())),
        ("Translated Question", strings(false, rows.iter().map(|e| e.question.as_str()).collect())),
        (
            "Translated Options",
            string_list(false, rows.iter().map(|e| e.options.iter().map(String::as_str).collect()).collect()),
        ),
        ("Label", Arc::new(Int64Array::from(rows.iter().enumerate().map(|(i, e)| label(i, e)).collect::<Vec<_>>()))),
    ];
    write_batch(path, columns, PLAIN);
}

/// Leaderboard-style rows without labels: collect works, ablate reports the kept rate and the
/// probability drop of the base answer instead of accuracy, and says so; a mix keeps accuracy
/// on the labelled rows and says how many have none.
#[test]
fn hidden_labels_through_the_pipeline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mini = load_examples(&root.join("assets/data/mini-cvqa/test.parquet"), Lang::En).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, label: &dyn Fn(usize, &McExample) -> Option<i64>| -> (serde_json::Value, String) {
        let data = dir.path().join(format!("{name}.parquet"));
        write_examples(&data, &mini, label);
        let out = dir.path().join(name);
        let o = Command::new(env!("CARGO_BIN_EXE_culturelens"))
            .args(["pipeline", "--data", data.to_str().unwrap(), "--limit", "4", "--methods", "cas", "--k", "5"])
            .args(["--out", out.to_str().unwrap()])
            .current_dir(root)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let summary = serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        (summary, fs::read_to_string(out.join("report.md")).unwrap())
    };
    let (s, md) = run("hidden", &|_, _| Some(-1));
    assert_eq!(s["metric"], "kept");
    assert!(s["base_accuracy"].as_object().unwrap().values().all(|v| v == 1.0), "the base answer is kept at baseline");
    let cas = &s["methods"]["cas"];
    assert_eq!(cas["kept"], cas["matrix"]);
    assert_eq!(cas["prob_drop"].as_array().unwrap().len(), 5);
    assert!(md.contains("20 of 20 rows have no label") && md.contains("base answers kept"), "{md}");

    let (s, md) = run("mixed", &|i, e| if i % 2 == 0 { e.label.map(|l| l as i64) } else { None });
    assert_eq!(s["metric"], "accuracy");
    assert!(md.contains("10 of 20 rows have no label: accuracy counts the labelled rows only"), "{md}");
}
