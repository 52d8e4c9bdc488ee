//! Small CVQA-schema parquet files written with the parquet crate's low-level writer (the
//! Arrow writer's variants are in parquet_formats.rs).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

pub struct Row<'a> {
    pub id: &'a str,
    pub subset: &'a str,
    pub question: &'a str,
    pub options: Vec<&'a str>,
    pub label: i64,
    pub image: Option<&'a [u8]>,
}

const FULL: &str = "message schema {
    OPTIONAL group image { OPTIONAL BYTE_ARRAY bytes; OPTIONAL BYTE_ARRAY path (UTF8); }
    OPTIONAL BYTE_ARRAY ID (UTF8);
    OPTIONAL BYTE_ARRAY Subset (UTF8);
    OPTIONAL BYTE_ARRAY Translated_Question (UTF8);
    OPTIONAL group Translated_Options (LIST) { REPEATED group list { OPTIONAL BYTE_ARRAY element (UTF8); } }
    OPTIONAL INT64 Label;
}";

fn strings(v: Vec<&str>) -> Vec<ByteArray> {
    v.into_iter().map(ByteArray::from).collect()
}

/// Write `rows` with the CVQA columns the English reader needs, leaving out `omit` if given.
/// (The message-type parser takes no spaces in names, so `_` stands for a space and the
/// names are fixed up with the schema builder.)
pub fn cvqa(path: &Path, rows: &[Row], omit: Option<&str>) {
    use parquet::schema::types::Type;
    let parsed = parse_message_type(FULL).unwrap();
    let fields: Vec<Arc<Type>> = parsed
        .get_fields()
        .iter()
        .filter(|f| Some(f.name().replace('_', " ").as_str()) != omit)
        .map(|f| {
            let name = f.name().replace('_', " ");
            Arc::new(match f.as_ref() {
                Type::PrimitiveType { basic_info, physical_type, .. } => {
                    Type::primitive_type_builder(&name, *physical_type)
                        .with_repetition(basic_info.repetition())
                        .with_converted_type(basic_info.converted_type())
                        .with_logical_type(basic_info.logical_type_ref().cloned())
                        .build()
                        .unwrap()
                }
                Type::GroupType { basic_info, fields } => Type::group_type_builder(&name)
                    .with_repetition(basic_info.repetition())
                    .with_converted_type(basic_info.converted_type())
                    .with_logical_type(basic_info.logical_type_ref().cloned())
                    .with_fields(fields.clone())
                    .build()
                    .unwrap(),
            })
        })
        .collect();
    let schema = Arc::new(Type::group_type_builder("schema").with_fields(fields).build().unwrap());
    let props = Arc::new(WriterProperties::builder().build());
    let mut w = SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let leaves: Vec<String> = [
        "image.bytes",
        "image.path",
        "ID",
        "Subset",
        "Translated Question",
        "Translated Options.list.element",
        "Label",
    ]
    .iter()
    .filter(|l| omit.is_none_or(|o| !l.starts_with(o)))
    .map(|l| l.to_string())
    .collect();
    let mut leaf = leaves.into_iter();
    while let Some(mut col) = rg.next_column().unwrap() {
        let name = leaf.next().unwrap();
        match name.as_str() {
            "image.bytes" | "image.path" => {
                let mut vals = Vec::new();
                let mut def = Vec::new();
                for r in rows {
                    match r.image {
                        Some(b) => {
                            vals.push(if name == "image.bytes" {
                                ByteArray::from(b.to_vec())
                            } else {
                                ByteArray::from(format!("{}.png", r.id).as_str())
                            });
                            def.push(2);
                        }
                        None => def.push(0),
                    }
                }
                col.typed::<ByteArrayType>().write_batch(&vals, Some(&def), None).unwrap();
            }
            "ID" | "Subset" | "Translated Question" => {
                let vals = strings(
                    rows.iter()
                        .map(|r| match name.as_str() {
                            "ID" => r.id,
                            "Subset" => r.subset,
                            _ => r.question,
                        })
                        .collect(),
                );
                let def = vec![1; rows.len()];
                col.typed::<ByteArrayType>().write_batch(&vals, Some(&def), None).unwrap();
            }
            "Translated Options.list.element" => {
                let (mut vals, mut def, mut rep) = (Vec::new(), Vec::new(), Vec::new());
                for r in rows {
                    for (k, o) in r.options.iter().enumerate() {
                        vals.push(ByteArray::from(*o));
                        def.push(3);
                        rep.push(if k == 0 { 0 } else { 1 });
                    }
                }
                col.typed::<ByteArrayType>().write_batch(&vals, Some(&def), Some(&rep)).unwrap();
            }
            "Label" => {
                let vals: Vec<i64> = rows.iter().map(|r| r.label).collect();
                col.typed::<Int64Type>().write_batch(&vals, Some(&vec![1; rows.len()]), None).unwrap();
            }
            other => panic!("unexpected column {other}"),
        }
        col.close().unwrap();
    }
    rg.close().unwrap();
    w.close().unwrap();
}
