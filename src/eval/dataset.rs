//! Readers for CVQA-style multiple-choice VQA data sets.
//!
//! Two input formats:
//! * Parquet with the Hugging Face `afaji/cvqa` schema (`image` struct<bytes, path>, `ID`,
//!   `Subset` = Python tuple string `('Japanese', 'Japan')`, `Question`, `Translated Question`,
//!   `Options`, `Translated Options`, `Label`, `Category`, …): one file, or a directory of
//!   `*.parquet` shards read in file-name order.
//! * Our own JSONL: one object per line
//!   `{"id", "language", "country", "question", "options": [..], "label", "image": "rel/path.png", "category"?}`,
//!   image paths relative to the JSONL file's directory, read into bytes at load time.
//!
//! Every row is validated (label in range, at least [`MIN_OPTIONS`] options); every error names the
//! file and, where relevant, the row (ID, or index when the ID is unknown) and the column.
//! A null/missing image is kept as `image: None`; image bytes are not decoded here.
//!
//! Grouping (by country, language or the pair) lives in the `grouping` module and is
//! re-exported here.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::errors::ParquetError;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use parquet::schema::types::Type as SchemaType;

use super::example::McExample;

pub use super::grouping::{group, GroupBy, Grouped};

/// Fewest options a row may have.
pub const MIN_OPTIONS: usize = 4;

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
    #[error("{path}: reading row {row}: {source}")]
    ParquetRow {
        path: PathBuf,
        row: usize,
        #[source]
        source: ParquetError,
    },
    #[error("{path}: missing column `{column}` (columns present: {present})")]
    MissingColumn { path: PathBuf, column: String, present: String },
    #[error("{path}: row {row}, column `{column}`: {msg}")]
    BadValue { path: PathBuf, row: String, column: String, msg: String },
    #[error("{path}: row {row}: Subset {value:?} is not a Python tuple string like \"('Japanese', 'Japan')\"")]
    BadSubset { path: PathBuf, row: String, value: String },
    #[error("{path}: row {row}: label {label} is outside 0..{n_options}")]
    LabelOutOfRange { path: PathBuf, row: String, label: i64, n_options: usize },
    #[error("{path}: row {row}: only {n_options} options, at least {min} needed")]
    TooFewOptions { path: PathBuf, row: String, n_options: usize, min: usize },
    #[error("{path}:{line}: {msg}")]
    Jsonl { path: PathBuf, line: usize, msg: String },
    #[error("{path}:{line}: image {image} cannot be read: {source}")]
    MissingImage {
        path: PathBuf,
        line: usize,
        image: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: directory holds no *.parquet files")]
    NoShards { path: PathBuf },
    #[error("{path}: unsupported input (expected a .parquet file, a directory of .parquet shards, or a .jsonl file)")]
    Unsupported { path: PathBuf },
    #[error("unknown group `{name}` (groups present: {available})")]
    UnknownGroup { name: String, available: String },
}

/// Load a parquet file, a directory of `*.parquet` shards (sorted by name), or a `.jsonl` file.
///
/// `lang` picks the question/options columns of CVQA parquet files; JSONL has one language and
/// ignores it.
pub fn load_examples(path: &Path, lang: Lang) -> Result<Vec<McExample>, DatasetError> {
    let meta = fs::metadata(path).map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
    if meta.is_dir() {
        let shards = parquet_shards(path)?;
        let mut out = Vec::new();
        for shard in shards {
            out.extend(load_parquet(&shard, lang)?);
        }
        return Ok(out);
    }
    match extension(path).as_deref() {
        Some("jsonl") | Some("ndjson") => load_jsonl(path),
        Some("parquet") | Some("pq") => load_parquet(path, lang),
        _ => {
            // Unknown extension: sniff the parquet magic number.
            let head = fs::read(path).map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
            if head.starts_with(b"PAR1") {
                load_parquet(path, lang)
            } else {
                Err(DatasetError::Unsupported { path: path.to_path_buf() })
            }
        }
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase())
}

/// The `*.parquet` files directly inside `dir`, sorted by file name.
pub fn parquet_shards(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let io = |source| DatasetError::Io { path: dir.to_path_buf(), source };
    let mut shards = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let p = entry.map_err(io)?.path();
        if p.is_file() && extension(&p).as_deref() == Some("parquet") {
            shards.push(p);
        }
    }
    if shards.is_empty() {
        return Err(DatasetError::NoShards { path: dir.to_path_buf() });
    }
    shards.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(shards)
}

// ---------------------------------------------------------------------------------------------
// Parquet

const COL_ID: &str = "ID";
const COL_SUBSET: &str = "Subset";
const COL_LABEL: &str = "Label";
const COL_IMAGE: &str = "image";
const COL_CATEGORY: &str = "Category";

/// Columns a CVQA parquet file must have for `lang`.
pub fn required_columns(lang: Lang) -> [&'static str; 6] {
    let (q, o) = lang.columns();
    [COL_ID, COL_SUBSET, q, o, COL_LABEL, COL_IMAGE]
}

/// Check that the top-level columns of `schema` include every column `lang` needs and return the
/// projection (required columns plus `Category` when present) to read.
pub fn check_columns(path: &Path, schema: &SchemaType, lang: Lang) -> Result<SchemaType, DatasetError> {
    let fields = schema.get_fields();
    let find = |name: &str| fields.iter().find(|f| f.name() == name).cloned();
    let mut picked: Vec<Arc<SchemaType>> = Vec::new();
    for col in required_columns(lang) {
        match find(col) {
            Some(f) => picked.push(f),
            None => {
                let present: Vec<&str> = fields.iter().map(|f| f.name()).collect();
                return Err(DatasetError::MissingColumn {
                    path: path.to_path_buf(),
                    column: col.to_string(),
                    present: present.join(", "),
                });
            }
        }
    }
    if let Some(f) = find(COL_CATEGORY) {
        picked.push(f);
    }
    SchemaType::group_type_builder(schema.name())
        .with_fields(picked)
        .build()
        .map_err(|source| DatasetError::Parquet { path: path.to_path_buf(), source })
}

fn load_parquet(path: &Path, lang: Lang) -> Result<Vec<McExample>, DatasetError> {
    let file = fs::File::open(path).map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
    let reader =
        SerializedFileReader::new(file).map_err(|source| DatasetError::Parquet { path: path.to_path_buf(), source })?;
    let schema = reader.metadata().file_metadata().schema_descr().root_schema();
    let projection = check_columns(path, schema, lang)?;
    let rows = reader
        .get_row_iter(Some(projection))
        .map_err(|source| DatasetError::Parquet { path: path.to_path_buf(), source })?;
    let (qcol, ocol) = lang.columns();
    let mut out = Vec::with_capacity(reader.metadata().file_metadata().num_rows().max(0) as usize);
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|source| DatasetError::ParquetRow { path: path.to_path_buf(), row: i, source })?;
        out.push(parquet_row(path, i, row, qcol, ocol)?);
    }
    Ok(out)
}

fn parquet_row(path: &Path, index: usize, row: Row, qcol: &str, ocol: &str) -> Result<McExample, DatasetError> {
    let mut id = None;
    let mut subset = None;
    let mut question = None;
    let mut options = None;
    let mut label = None;
    let mut image = None;
    let mut category = None;
    for (name, field) in row.into_columns() {
        match name.as_str() {
            COL_ID => id = Some(field),
            COL_SUBSET => subset = Some(field),
            COL_LABEL => label = Some(field),
            COL_IMAGE => image = Some(field),
            COL_CATEGORY => category = Some(field),
            n if n == qcol => question = Some(field),
            n if n == ocol => options = Some(field),
            _ => {}
        }
    }
    let bad = |row: &str, column: &str, msg: String| DatasetError::BadValue {
        path: path.to_path_buf(),
        row: row.to_string(),
        column: column.to_string(),
        msg,
    };
    // The ID names the row in every later message; before we have it, use the index.
    let idx_name = format!("#{index}");
    let id = match id {
        Some(Field::Str(s)) => s,
        Some(Field::Bytes(b)) => String::from_utf8_lossy(b.data()).into_owned(),
        Some(Field::Long(v)) => v.to_string(),
        Some(Field::Int(v)) => v.to_string(),
        other => return Err(bad(&idx_name, COL_ID, format!("expected a string, found {}", describe(&other)))),
    };
    let rname = format!("#{index} (ID {id})");
    let text = |f: Option<Field>, column: &str| -> Result<String, DatasetError> {
        match f {
            Some(Field::Str(s)) => Ok(s),
            other => Err(bad(&rname, column, format!("expected a string, found {}", describe(&other)))),
        }
    };
    let subset_s = text(subset, COL_SUBSET)?;
    let (language, country) = parse_subset(&subset_s).ok_or_else(|| DatasetError::BadSubset {
        path: path.to_path_buf(),
        row: rname.clone(),
        value: subset_s.clone(),
    })?;
    let question = text(question, qcol)?;
    let options = match options {
        Some(Field::ListInternal(list)) => {
            let mut v = Vec::with_capacity(list.len());
            for (k, e) in list.elements().iter().enumerate() {
                match e {
                    Field::Str(s) => v.push(s.clone()),
                    other => {
                        return Err(bad(
                            &rname,
                            ocol,
                            format!("option {k}: expected a string, found {}", describe_ref(other)),
                        ))
                    }
                }
            }
            v
        }
        other => return Err(bad(&rname, ocol, format!("expected a list of strings, found {}", describe(&other)))),
    };
    let label = match label {
        Some(Field::Long(v)) => v,
        Some(Field::Int(v)) => v as i64,
        Some(Field::Short(v)) => v as i64,
        Some(Field::Byte(v)) => v as i64,
        Some(Field::UByte(v)) => v as i64,
        Some(Field::UShort(v)) => v as i64,
        Some(Field::UInt(v)) => v as i64,
        Some(Field::ULong(v)) => i64::try_from(v).unwrap_or(i64::MAX),
        other => return Err(bad(&rname, COL_LABEL, format!("expected an integer, found {}", describe(&other)))),
    };
    let image = match image {
        None | Some(Field::Null) => None,
        Some(Field::Bytes(b)) => Some(b.data().to_vec()),
        Some(Field::Group(g)) => {
            let mut bytes = None;
            for (n, f) in g.get_column_iter() {
                if n == "bytes" {
                    bytes = Some(f);
                }
            }
            match bytes {
                None | Some(Field::Null) => None,
                Some(Field::Bytes(b)) => Some(b.data().to_vec()),
                Some(other) => {
                    return Err(bad(&rname, "image.bytes", format!("expected binary, found {}", describe_ref(other))))
                }
            }
        }
        Some(other) => {
            return Err(bad(&rname, COL_IMAGE, format!("expected struct<bytes, path>, found {}", describe_ref(&other))))
        }
    };
    let category = match category {
        None | Some(Field::Null) => String::new(),
        Some(Field::Str(s)) => s,
        other => return Err(bad(&rname, COL_CATEGORY, format!("expected a string, found {}", describe(&other)))),
    };
    let label = check_row(path, &rname, label, options.len())?;
    Ok(McExample { id, language, country, question, options, label, image, category })
}

fn describe(f: &Option<Field>) -> String {
    match f {
        None => "nothing".into(),
        Some(f) => describe_ref(f),
    }
}

fn describe_ref(f: &Field) -> String {
    match f {
        Field::Null => "null".into(),
        Field::Str(_) => "a string".into(),
        Field::Bytes(_) => "binary".into(),
        Field::Group(_) => "a struct".into(),
        Field::ListInternal(_) => "a list".into(),
        Field::MapInternal(_) => "a map".into(),
        other => format!("{other}"),
    }
}

/// Shared row checks: at least [`MIN_OPTIONS`] options, label in 0..n_options.
fn check_row(path: &Path, row: &str, label: i64, n_options: usize) -> Result<usize, DatasetError> {
    if n_options < MIN_OPTIONS {
        return Err(DatasetError::TooFewOptions {
            path: path.to_path_buf(),
            row: row.to_string(),
            n_options,
            min: MIN_OPTIONS,
        });
    }
    if label < 0 || label as u64 >= n_options as u64 {
        return Err(DatasetError::LabelOutOfRange { path: path.to_path_buf(), row: row.to_string(), label, n_options });
    }
    Ok(label as usize)
}

// ---------------------------------------------------------------------------------------------
// Subset tuple strings

/// Parse CVQA's `Subset` column, the Python `str()` of a `(language, country)` tuple:
/// `('Japanese', 'Japan')`. Handles either quote style and the escapes Python's `repr` writes
/// (`\\`, `\'`, `\"`, `\n`, `\r`, `\t`, `\xhh`, `\uhhhh`, `\Uhhhhhhhh`). Returns `None` for anything
/// else (not a 2-tuple of string literals, trailing text, bad escape).
pub fn parse_subset(s: &str) -> Option<(String, String)> {
    let mut p = Parser { c: s.chars().collect(), i: 0 };
    p.ws();
    p.eat('(')?;
    p.ws();
    let a = p.string()?;
    p.ws();
    p.eat(',')?;
    p.ws();
    let b = p.string()?;
    p.ws();
    if p.peek() == Some(',') {
        p.i += 1;
        p.ws();
    }
    p.eat(')')?;
    p.ws();
    if p.i != p.c.len() {
        return None;
    }
    Some((a, b))
}

struct Parser {
    c: Vec<char>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }
    fn next(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.i += 1;
        Some(ch)
    }
    fn ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
    }
    fn eat(&mut self, ch: char) -> Option<()> {
        (self.next()? == ch).then_some(())
    }
    fn hex(&mut self, n: usize) -> Option<char> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v * 16 + self.next()?.to_digit(16)?;
        }
        char::from_u32(v)
    }
    fn string(&mut self) -> Option<String> {
        let q = self.next()?;
        if q != '\'' && q != '"' {
            return None;
        }
        let mut out = String::new();
        loop {
            match self.next()? {
                ch if ch == q => return Some(out),
                '\\' => match self.next()? {
                    '\\' => out.push('\\'),
                    '\'' => out.push('\''),
                    '"' => out.push('"'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'x' => out.push(self.hex(2)?),
                    'u' => out.push(self.hex(4)?),
                    'U' => out.push(self.hex(8)?),
                    // Python keeps unknown escapes verbatim.
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                },
                ch => out.push(ch),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSONL

/// One line of our JSONL format.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JsonlRow {
    pub id: String,
    pub language: String,
    pub country: String,
    pub question: String,
    pub options: Vec<String>,
    pub label: i64,
    /// Path relative to the JSONL file's directory; absent or null → no image.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
}

fn load_jsonl(path: &Path) -> Result<Vec<McExample>, DatasetError> {
    let text = fs::read_to_string(path).map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let row: JsonlRow = serde_json::from_str(line).map_err(|e| DatasetError::Jsonl {
            path: path.to_path_buf(),
            line: line_no,
            msg: e.to_string(),
        })?;
        let rname = format!("line {line_no} (ID {})", row.id);
        let label = check_row(path, &rname, row.label, row.options.len())?;
        let image = match row.image.as_deref() {
            None | Some("") => None,
            Some(rel) => {
                let p = base.join(rel);
                Some(fs::read(&p).map_err(|source| DatasetError::MissingImage {
                    path: path.to_path_buf(),
                    line: line_no,
                    image: p.clone(),
                    source,
                })?)
            }
        };
        out.push(McExample {
            id: row.id,
            language: row.language,
            country: row.country,
            question: row.question,
            options: row.options,
            label,
            image,
            category: row.category.unwrap_or_default(),
        });
    }
    Ok(out)
}
