//! Our own JSONL format: one row per line, images as paths relative to the file.

use std::fs;
use std::path::Path;

use super::{check_row, DatasetError};
use crate::eval::McExample;

/// One line of our JSONL format.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JsonlRow {
    pub id: String,
    pub language: String,
    pub country: String,
    pub question: String,
    pub options: Vec<String>,
    /// Index of the correct option; absent, null or −1 when hidden.
    #[serde(default)]
    pub label: Option<i64>,
    /// Path relative to the JSONL file's directory; absent or null → no image.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
}

pub(super) fn load(path: &Path) -> Result<Vec<McExample>, DatasetError> {
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
                    row: rname.clone(),
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
