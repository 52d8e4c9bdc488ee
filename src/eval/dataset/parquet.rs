//! CVQA parquet files as the hub, pyarrow and `datasets` write them. The codecs, column types
//! and columns are checked from the footer before any row is read; rows then go through the
//! `parquet` crate's record reader, which sees list and large_list, string and large_string,
//! plain and dictionary pages alike.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{Compression, Type as Physical};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use parquet::schema::types::Type as SchemaType;

use super::{check_row, parse_subset, DatasetError, Lang};
use crate::eval::McExample;

const COL_ID: &str = "ID";
const COL_SUBSET: &str = "Subset";
const COL_LABEL: &str = "Label";
const COL_IMAGE: &str = "image";
const COL_CATEGORY: &str = "Category";

/// Columns a CVQA parquet file must have for `lang` (`Label` and `Category` are optional).
pub fn required_columns(lang: Lang) -> [&'static str; 5] {
    let (q, o) = lang.columns();
    [COL_ID, COL_SUBSET, q, o, COL_IMAGE]
}

/// Checks that the top-level columns of `schema` include every column `lang` needs, with types
/// this reader takes, and returns the projection to read (the required columns plus `Label` and
/// `Category` when present).
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
    picked.extend([COL_LABEL, COL_CATEGORY].into_iter().filter_map(find));
    let (qcol, ocol) = lang.columns();
    for f in &picked {
        check_type(path, f, qcol, ocol)?;
    }
    SchemaType::group_type_builder(schema.name())
        .with_fields(picked)
        .build()
        .map_err(|source| DatasetError::Parquet { path: path.to_path_buf(), source })
}

fn physical(t: &SchemaType) -> Option<Physical> {
    t.is_primitive().then(|| t.get_physical_type())
}

fn describe_type(t: &SchemaType) -> String {
    match physical(t) {
        Some(p) => format!("{p}"),
        None => {
            let inner: Vec<String> =
                t.get_fields().iter().map(|f| format!("{}: {}", f.name(), describe_type(f))).collect();
            format!("group {{{}}}", inner.join(", "))
        }
    }
}

/// The leaf of a list column in any of parquet's list encodings (`repeated group list { element }`,
/// `repeated group array { … }`, or a bare `repeated` primitive).
fn list_leaf(t: &SchemaType) -> Option<&SchemaType> {
    let mut t = t;
    while !t.is_primitive() {
        let fields = t.get_fields();
        if fields.len() != 1 {
            return None;
        }
        t = &fields[0];
    }
    Some(t)
}

fn check_type(path: &Path, f: &SchemaType, qcol: &str, ocol: &str) -> Result<(), DatasetError> {
    let name = f.name();
    let is_bytes = |t: &SchemaType| physical(t) == Some(Physical::BYTE_ARRAY);
    let (ok, expected) = match name {
        COL_ID => (matches!(physical(f), Some(Physical::BYTE_ARRAY | Physical::INT32 | Physical::INT64)), "a string"),
        COL_LABEL => (matches!(physical(f), Some(Physical::INT32 | Physical::INT64)), "an integer"),
        COL_IMAGE => (
            is_bytes(f)
                || (!f.is_primitive()
                    && f.get_fields().iter().any(|c| c.name() == "bytes" || c.name() == "path")
                    && f.get_fields()
                        .iter()
                        .filter(|c| c.name() == "bytes" || c.name() == "path")
                        .all(|c| is_bytes(c))),
            "struct<bytes: binary, path: string> or binary",
        ),
        n if n == ocol => (!f.is_primitive() && list_leaf(f).is_some_and(is_bytes), "a list of strings"),
        n if n == qcol || n == COL_SUBSET || n == COL_CATEGORY => (is_bytes(f), "a string"),
        _ => (true, ""),
    };
    if ok {
        Ok(())
    } else {
        Err(DatasetError::ColumnType {
            path: path.to_path_buf(),
            column: name.to_string(),
            found: describe_type(f),
            expected: expected.to_string(),
        })
    }
}

/// Every column chunk must use a codec this build decodes (all but LZO), lie inside the file,
/// and, where it is not a list, hold one value per row. A damaged footer otherwise sends the
/// reader decoding garbage pages for a long time before it fails.
fn check_footer(path: &Path, meta: &ParquetMetaData, file_len: u64) -> Result<(), DatasetError> {
    let bad = |reason: String| DatasetError::Malformed { path: path.to_path_buf(), reason };
    for (rg, group) in meta.row_groups().iter().enumerate() {
        for col in group.columns() {
            let (start, len) = col.byte_range();
            if start.checked_add(len).is_none_or(|end| end > file_len) {
                return Err(bad(format!(
                    "column `{}` of row group {rg} claims bytes {start}..{} of a {file_len}-byte file",
                    col.column_path().string(),
                    start.saturating_add(len)
                )));
            }
            let flat = col.column_descr().max_rep_level() == 0;
            if flat && col.num_values() != group.num_rows() {
                return Err(bad(format!(
                    "column `{}` of row group {rg} holds {} values for {} rows",
                    col.column_path().string(),
                    col.num_values(),
                    group.num_rows()
                )));
            }
            if matches!(col.compression(), Compression::LZO) {
                return Err(DatasetError::Codec {
                    path: path.to_path_buf(),
                    column: col.column_path().string(),
                    row_group: rg,
                    codec: format!("{:?}", col.compression()),
                });
            }
        }
    }
    Ok(())
}

/// The `parquet` crate panics on some malformed files (out-of-range slices in its decoders)
/// rather than returning an error; such a file is reported like any other unreadable one.
pub(super) fn load(path: &Path, lang: Lang) -> Result<Vec<McExample>, DatasetError> {
    crate::util::panic_as_error(|| load_unguarded(path, lang))
        .unwrap_or_else(|message| Err(DatasetError::Malformed { path: path.to_path_buf(), reason: message }))
}

fn load_unguarded(path: &Path, lang: Lang) -> Result<Vec<McExample>, DatasetError> {
    // In memory (the rows' images are copied out anyway): the reader then skips a damaged page
    // header's garbage at memory speed instead of one small read call at a time.
    let bytes =
        bytes::Bytes::from(fs::read(path).map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?);
    let file_len = bytes.len() as u64;
    let reader = SerializedFileReader::new(bytes)
        .map_err(|source| DatasetError::Parquet { path: path.to_path_buf(), source })?;
    check_footer(path, reader.metadata(), file_len)?;
    let schema = reader.metadata().file_metadata().schema_descr().root_schema();
    let projection = check_columns(path, schema, lang)?;
    let rows = reader
        .get_row_iter(Some(projection))
        .map_err(|source| DatasetError::Parquet { path: path.to_path_buf(), source })?;
    let (qcol, ocol) = lang.columns();
    // Not sized from the footer's row count: a lying footer must not size an allocation.
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|source| DatasetError::ParquetRow { path: path.to_path_buf(), row: i, source })?;
        out.push(parquet_row(path, i, row, qcol, ocol)?);
    }
    Ok(out)
}

/// One row's fields by column.
#[derive(Default)]
struct Columns {
    id: Option<Field>,
    subset: Option<Field>,
    question: Option<Field>,
    options: Option<Field>,
    label: Option<Field>,
    image: Option<Field>,
    category: Option<Field>,
}

fn parquet_row(path: &Path, index: usize, row: Row, qcol: &str, ocol: &str) -> Result<McExample, DatasetError> {
    let mut c = Columns::default();
    for (name, field) in row.into_columns() {
        match name.as_str() {
            COL_ID => c.id = Some(field),
            COL_SUBSET => c.subset = Some(field),
            COL_LABEL => c.label = Some(field),
            COL_IMAGE => c.image = Some(field),
            COL_CATEGORY => c.category = Some(field),
            n if n == qcol => c.question = Some(field),
            n if n == ocol => c.options = Some(field),
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
    let id = match c.id {
        Some(Field::Str(s)) => s,
        Some(Field::Bytes(b)) => String::from_utf8_lossy(b.data()).into_owned(),
        Some(Field::Long(v)) => v.to_string(),
        Some(Field::Int(v)) => v.to_string(),
        other => {
            return Err(bad(&format!("#{index}"), COL_ID, format!("expected a string, found {}", describe(&other))))
        }
    };
    let rname = format!("#{index} (ID {id})");
    let text = |f: Option<Field>, column: &str| -> Result<String, DatasetError> {
        match f {
            Some(Field::Str(s)) => Ok(s),
            other => Err(bad(&rname, column, format!("expected a string, found {}", describe(&other)))),
        }
    };
    let subset_s = text(c.subset, COL_SUBSET)?;
    let (language, country) = parse_subset(&subset_s).ok_or_else(|| DatasetError::BadSubset {
        path: path.to_path_buf(),
        row: rname.clone(),
        value: subset_s.clone(),
    })?;
    let question = text(c.question, qcol)?;
    let options = match c.options {
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
    let label = match c.label {
        None | Some(Field::Null) => None,
        Some(Field::Long(v)) => Some(v),
        Some(Field::Int(v)) => Some(v as i64),
        Some(Field::Short(v)) => Some(v as i64),
        Some(Field::Byte(v)) => Some(v as i64),
        Some(Field::UByte(v)) => Some(v as i64),
        Some(Field::UShort(v)) => Some(v as i64),
        Some(Field::UInt(v)) => Some(v as i64),
        Some(Field::ULong(v)) => Some(i64::try_from(v).unwrap_or(i64::MAX)),
        other => return Err(bad(&rname, COL_LABEL, format!("expected an integer, found {}", describe(&other)))),
    };
    let image = image_bytes(path, &rname, c.image, &bad)?;
    let category = match c.category {
        None | Some(Field::Null) => String::new(),
        Some(Field::Str(s)) => s,
        other => return Err(bad(&rname, COL_CATEGORY, format!("expected a string, found {}", describe(&other)))),
    };
    let label = check_row(path, &rname, label, options.len())?;
    Ok(McExample { id, language, country, question, options, label, image, category })
}

/// The image column: binary, or `datasets`' Image struct {bytes, path}, whose `path` names a
/// file (relative to the parquet file) when `bytes` is null.
fn image_bytes(
    path: &Path,
    rname: &str,
    field: Option<Field>,
    bad: &dyn Fn(&str, &str, String) -> DatasetError,
) -> Result<Option<Vec<u8>>, DatasetError> {
    let group = match field {
        None | Some(Field::Null) => return Ok(None),
        Some(Field::Bytes(b)) => return Ok(Some(b.data().to_vec())),
        Some(Field::Group(g)) => g,
        Some(other) => {
            return Err(bad(rname, COL_IMAGE, format!("expected struct<bytes, path>, found {}", describe_ref(&other))))
        }
    };
    let (mut bytes, mut file) = (None, None);
    for (n, f) in group.get_column_iter() {
        match (n.as_str(), f) {
            (_, Field::Null) => {}
            ("bytes", Field::Bytes(b)) => bytes = Some(b.data().to_vec()),
            ("path", Field::Str(s)) => file = Some(s.clone()),
            ("bytes" | "path", other) => {
                return Err(bad(rname, &format!("image.{n}"), format!("unexpected {}", describe_ref(other))))
            }
            _ => {}
        }
    }
    match (bytes, file) {
        (Some(b), _) => Ok(Some(b)),
        (None, Some(f)) if !f.is_empty() => {
            let image = path.parent().unwrap_or(Path::new(".")).join(&f);
            fs::read(&image).map(Some).map_err(|source| DatasetError::MissingImage {
                path: path.to_path_buf(),
                row: rname.to_string(),
                image,
                source,
            })
        }
        _ => Ok(None),
    }
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
