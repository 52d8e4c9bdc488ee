//! Every way reading a data set can fail, each naming the file and, where it applies, the row
//! and column.

use std::path::PathBuf;

use parquet::errors::ParquetError;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable parquet file: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    #[error("{path}: not a readable parquet file: the reader failed on malformed data ({reason})")]
    Malformed { path: PathBuf, reason: String },
    #[error("{path}: reading row {row}: {source}")]
    ParquetRow {
        path: PathBuf,
        row: usize,
        #[source]
        source: ParquetError,
    },
    #[error("{path}: column `{column}` (row group {row_group}) is compressed with {codec}, which culturelens cannot read; rewrite the file with snappy or zstd, e.g. pyarrow.parquet.write_table(table, path, compression=\"zstd\")")]
    Codec { path: PathBuf, column: String, row_group: usize, codec: String },
    #[error("{path}: column `{column}` is {found}; expected {expected}")]
    ColumnType { path: PathBuf, column: String, found: String, expected: String },
    #[error("{path}: missing column `{column}` (columns present: {present})")]
    MissingColumn { path: PathBuf, column: String, present: String },
    #[error("{path}: row {row}, column `{column}`: {msg}")]
    BadValue { path: PathBuf, row: String, column: String, msg: String },
    #[error("{path}: row {row}: Subset {value:?} is not a Python tuple string like \"('Japanese', 'Japan')\"")]
    BadSubset { path: PathBuf, row: String, value: String },
    #[error("{path}: row {row}: label {label} is outside 0..{n_options} (-1 or null marks a hidden label)")]
    LabelOutOfRange { path: PathBuf, row: String, label: i64, n_options: usize },
    #[error("{path}: row {row}: only {n_options} options, at least {min} needed")]
    TooFewOptions { path: PathBuf, row: String, n_options: usize, min: usize },
    #[error("{path}: row {row}: {n_options} options, at most {max} (letters A to {last}) are supported")]
    TooManyOptions { path: PathBuf, row: String, n_options: usize, max: usize, last: char },
    #[error("{path}:{line}: {msg}")]
    Jsonl { path: PathBuf, line: usize, msg: String },
    #[error("{path}: row {row}: image {image} cannot be read: {source}")]
    MissingImage {
        path: PathBuf,
        row: String,
        image: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: holds no *.parquet files (looked in it, data/, <split>/ and <config>/<split>/)")]
    NoShards { path: PathBuf },
    #[error("{path}: no split `{split}`; found {found}")]
    NoSplit { path: PathBuf, split: String, found: String },
    #[error("{path}: `--split {split}` matches {candidates}; name one of them with --split")]
    AmbiguousSplit { path: PathBuf, split: String, candidates: String },
    #[error("{path}: several splits, {found}; choose one with --split")]
    ChooseSplit { path: PathBuf, found: String },
    #[error("{path}: unsupported input (expected a .parquet file, a directory of .parquet shards, or a .jsonl file)")]
    Unsupported { path: PathBuf },
    #[error(
        "{path}: --split {split} chooses among the splits of a data set folder; this is one file (leave --split out)"
    )]
    SplitOfFile { path: PathBuf, split: String },
    #[error("unknown group `{name}` (groups present: {available})")]
    UnknownGroup { name: String, available: String },
}
