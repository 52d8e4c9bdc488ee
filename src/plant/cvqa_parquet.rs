//! Writes quiz rows as one parquet file in the Hugging Face `afaji/cvqa` schema, which
//! `eval::dataset::load_examples` reads.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use parquet::basic::{Compression, ConvertedType, LogicalType, Repetition, Type as Physical, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};

use super::quiz::QuizRow;

fn string(name: &str) -> parquet::errors::Result<TypePtr> {
    Ok(Arc::new(
        Type::primitive_type_builder(name, Physical::BYTE_ARRAY)
            .with_repetition(Repetition::OPTIONAL)
            .with_converted_type(ConvertedType::UTF8)
            .with_logical_type(Some(LogicalType::String))
            .build()?,
    ))
}

/// `optional group NAME (LIST) { repeated group list { optional binary element (UTF8); } }`
fn string_list(name: &str) -> parquet::errors::Result<TypePtr> {
    let list = Type::group_type_builder("list")
        .with_repetition(Repetition::REPEATED)
        .with_fields(vec![string("element")?])
        .build()?;
    Ok(Arc::new(
        Type::group_type_builder(name)
            .with_repetition(Repetition::OPTIONAL)
            .with_converted_type(ConvertedType::LIST)
            .with_logical_type(Some(LogicalType::List))
            .with_fields(vec![Arc::new(list)])
            .build()?,
    ))
}

/// Leaf columns in schema order: image.bytes, image.path, ID, Subset, Question,
/// Translated Question, Options, Translated Options, Label, Category.
fn schema() -> parquet::errors::Result<Type> {
    let bytes =
        Type::primitive_type_builder("bytes", Physical::BYTE_ARRAY).with_repetition(Repetition::OPTIONAL).build()?;
    let image = Type::group_type_builder("image")
        .with_repetition(Repetition::OPTIONAL)
        .with_fields(vec![Arc::new(bytes), string("path")?])
        .build()?;
    let label = Type::primitive_type_builder("Label", Physical::INT64).with_repetition(Repetition::OPTIONAL).build()?;
    Type::group_type_builder("schema")
        .with_fields(vec![
            Arc::new(image),
            string("ID")?,
            string("Subset")?,
            string("Question")?,
            string("Translated Question")?,
            string_list("Options")?,
            string_list("Translated Options")?,
            Arc::new(label),
            string("Category")?,
        ])
        .build()
}

/// One string column: every row present (definition level `def`).
fn strings(rows: &[QuizRow], f: impl Fn(&QuizRow) -> Vec<u8>) -> Vec<ByteArray> {
    rows.iter().map(|r| ByteArray::from(f(r))).collect()
}

pub fn write_quiz(path: &Path, rows: &[QuizRow]) -> anyhow::Result<()> {
    write(path, rows).with_context(|| format!("{}: writing the quiz", path.display()))
}

fn write(path: &Path, rows: &[QuizRow]) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema()?), Arc::new(props))?;
    let mut group = writer.next_row_group()?;
    let n = rows.len();
    let text = |f: fn(&QuizRow) -> String| strings(rows, |r| f(r).into_bytes());
    // Options lists: every element present (def 3), a new row starts at repetition level 0.
    let list = || {
        let values: Vec<ByteArray> =
            rows.iter().flat_map(|r| r.options.iter().map(|o| ByteArray::from(o.as_str()))).collect();
        let rep: Vec<i16> = rows.iter().flat_map(|r| (0..r.options.len()).map(|k| (k > 0) as i16)).collect();
        (values, vec![3i16; rep.len()], rep)
    };
    let mut column = 0;
    while let Some(mut col) = group.next_column()? {
        match column {
            0 => {
                let v = strings(rows, |r| r.image_png.clone());
                col.typed::<ByteArrayType>().write_batch(&v, Some(&vec![2; n]), None)?;
            }
            1 => {
                let v = strings(rows, |r| r.image_name.clone().into_bytes());
                col.typed::<ByteArrayType>().write_batch(&v, Some(&vec![2; n]), None)?;
            }
            2..=5 | 9 => {
                let v = match column {
                    2 => text(|r| r.id.clone()),
                    3 => text(|r| format!("('{}', '{}')", r.language, r.country)),
                    4 | 5 => text(|r| r.question.clone()),
                    _ => text(|r| r.category.clone()),
                };
                col.typed::<ByteArrayType>().write_batch(&v, Some(&vec![1; n]), None)?;
            }
            6 | 7 => {
                let (v, def, rep) = list();
                col.typed::<ByteArrayType>().write_batch(&v, Some(&def), Some(&rep))?;
            }
            8 => {
                let v: Vec<i64> = rows.iter().map(|r| r.label as i64).collect();
                col.typed::<Int64Type>().write_batch(&v, Some(&vec![1; n]), None)?;
            }
            other => anyhow::bail!("unexpected column #{other} in the quiz schema"),
        }
        col.close()?;
        column += 1;
    }
    group.close()?;
    writer.close()?;
    Ok(())
}
