//! Readers for CVQA-style multiple-choice VQA data sets.
//!
//! Two input formats:
//! * Parquet with the Hugging Face `afaji/cvqa` schema (`image` struct<bytes, path> or binary,
//!   `ID`, `Subset` = Python tuple string `('Japanese', 'Japan')`, `Question`,
//!   `Translated Question`, `Options`, `Translated Options`, `Label`, `Category`, …), as pyarrow,
//!   `datasets` and the hub write it (any codec the `parquet` crate reads, dictionary pages, any
//!   row-group size, list or large_list, string or large_string): one file, or a directory in any
//!   hub layout (`layout`), one split of it.
//! * Our own JSONL: one object per line
//!   `{"id", "language", "country", "question", "options": [..], "label", "image": "rel/path.png", "category"?}`,
//!   image paths relative to the JSONL file's directory, read into bytes at load time.
//!
//! Every row is validated (label in range or hidden, between [`MIN_OPTIONS`] and
//! [`MAX_OPTIONS`] options); every error names the file and, where relevant, the row (ID, or
//! index when the ID is unknown) and the column. A label that is missing, null or −1 is hidden
//! (leaderboard test splits): such rows still give statistics. A null/missing image is kept as
//! `image: None`; image bytes are not decoded here.
//!
//! Grouping (by country, language or the pair) lives in the `grouping` module and is
//! re-exported here.

mod error;
mod jsonl;
mod layout;
mod parquet;
mod subset;

use std::fs;
use std::path::Path;

use super::example::McExample;
pub use super::grouping::{group, GroupBy, Grouped};
pub use error::DatasetError;
pub use jsonl::JsonlRow;
pub use layout::split_files;
pub use parquet::{check_columns, required_columns};
pub use subset::parse_subset;

/// Fewest options a row may have.
pub const MIN_OPTIONS: usize = 4;
/// Most options a row may have: one answer letter each (A to H).
pub const MAX_OPTIONS: usize = crate::eval::mc::LETTERS.len();

/// Which text columns to read from a CVQA parquet file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// `Translated Question` / `Translated Options` (English).
    En,
    /// `Question` / `Options` (the culture's own language).
    Native,
}

impl Lang {
    /// (question column, options column) in the CVQA schema.
    pub fn columns(self) -> (&'static str, &'static str) {
        match self {
            Lang::En => ("Translated Question", "Translated Options"),
            Lang::Native => ("Question", "Options"),
        }
    }
}

/// Loads a parquet file, a `.jsonl` file, or a directory of parquet shards in any hub layout
/// (its `test` split, or its only one).
pub fn load_examples(path: &Path, lang: Lang) -> Result<Vec<McExample>, DatasetError> {
    load_split(path, None, lang)
}

/// As [`load_examples`], with the split of a directory chosen (`None`: `test` if there is one,
/// else the only split).
pub fn load_split(path: &Path, split: Option<&str>, lang: Lang) -> Result<Vec<McExample>, DatasetError> {
    let meta = fs::metadata(path).map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
    if meta.is_dir() {
        let mut out = Vec::new();
        for shard in split_files(path, split)? {
            out.extend(parquet::load(&shard, lang)?);
        }
        return Ok(out);
    }
    if let Some(split) = split {
        return Err(DatasetError::SplitOfFile { path: path.to_path_buf(), split: split.to_string() });
    }
    match extension(path).as_deref() {
        Some("jsonl") | Some("ndjson") => jsonl::load(path),
        Some("parquet") | Some("pq") => parquet::load(path, lang),
        _ => {
            // Unknown extension: sniff the parquet magic number.
            let mut head = [0u8; 4];
            let read = fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
            if read.is_ok() && &head == b"PAR1" {
                parquet::load(path, lang)
            } else {
                Err(DatasetError::Unsupported { path: path.to_path_buf() })
            }
        }
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase())
}

/// Shared row checks: between [`MIN_OPTIONS`] and [`MAX_OPTIONS`] options, a label in
/// 0..n_options or hidden (None, or −1 as leaderboard splits write it).
fn check_row(path: &Path, row: &str, label: Option<i64>, n_options: usize) -> Result<Option<usize>, DatasetError> {
    if n_options < MIN_OPTIONS {
        return Err(DatasetError::TooFewOptions {
            path: path.to_path_buf(),
            row: row.to_string(),
            n_options,
            min: MIN_OPTIONS,
        });
    }
    if n_options > MAX_OPTIONS {
        return Err(DatasetError::TooManyOptions {
            path: path.to_path_buf(),
            row: row.to_string(),
            n_options,
            max: MAX_OPTIONS,
            last: (b'A' + MAX_OPTIONS as u8 - 1) as char,
        });
    }
    match label {
        None | Some(-1) => Ok(None),
        Some(l) if l < 0 || l as u64 >= n_options as u64 => {
            Err(DatasetError::LabelOutOfRange { path: path.to_path_buf(), row: row.to_string(), label: l, n_options })
        }
        Some(l) => Ok(Some(l as usize)),
    }
}
