//! The JSON side of config files, shared by every model family's config: typed field access
//! with errors that name the file and field, and the decoder flavours. The configs of the
//! families and `config` itself build on this; it depends on none of them.

use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: field \"{field}\" {problem}")]
    Field { path: PathBuf, field: String, problem: String },
    #[error("{path}: unsupported architecture {arch:?}; supported: {supported} (see models.toml)")]
    UnknownArchitecture { path: PathBuf, arch: String, supported: String },
}

/// The decoder flavour a language model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFamily {
    Qwen2,
    Mistral,
}

impl TextFamily {
    /// From a (text_)config's model_type.
    pub fn from_model_type(t: &str) -> Option<TextFamily> {
        match t {
            "mistral" => Some(TextFamily::Mistral),
            "qwen2" => Some(TextFamily::Qwen2),
            _ => None,
        }
    }
}

/// Typed access to one JSON object of a config file, with errors that name the file and field.
pub struct Fields<'a> {
    pub path: &'a Path,
    pub json: &'a Value,
}

impl Fields<'_> {
    pub fn err(&self, field: &str, problem: &str) -> ConfigError {
        ConfigError::Field { path: self.path.into(), field: field.into(), problem: problem.into() }
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.json.get(field).filter(|v| !v.is_null())
    }

    pub fn usize(&self, field: &str) -> Result<usize, ConfigError> {
        match self.get(field) {
            None => Err(self.err(field, "is missing")),
            Some(v) => v
                .as_u64()
                .filter(|&n| n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| self.err(field, "must be a positive integer")),
        }
    }

    pub fn opt_usize(&self, field: &str) -> Result<Option<usize>, ConfigError> {
        if self.get(field).is_none() {
            return Ok(None);
        }
        self.usize(field).map(Some)
    }

    pub fn f64(&self, field: &str) -> Result<Option<f64>, ConfigError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite() && *x > 0.0)
                .map(Some)
                .ok_or_else(|| self.err(field, "must be a positive number")),
        }
    }

    pub fn bool(&self, field: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.err(field, "must be true or false")),
        }
    }

    pub fn ids(&self, field: &str) -> Vec<u32> {
        match self.get(field) {
            Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_u64()).map(|x| x as u32).collect(),
            _ => Vec::new(),
        }
    }
}

pub fn read_json(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
    serde_json::from_str(&text).map_err(|source| ConfigError::Json { path: path.into(), source })
}
