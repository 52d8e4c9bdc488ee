//! Which position ids the LM was trained with. HF's processor returns `mm_token_type_ids`, and
//! only with them does transformers ≥ 5 build 3-D M-RoPE positions; a model trained or evaluated
//! on batches without them (a custom collate, as the bundled culture-tiny model was) saw plain
//! sequential positions on all three axes, and must be run that way to reproduce it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file beside `config.json` that records run settings HF's config cannot express.
pub const SIDECAR: &str = "culturelens.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionIds {
    /// HF get_rope_index: image tokens at (t, row, col) of their merged grid.
    #[default]
    Mrope,
    /// 0, 1, 2, … on every axis, image tokens included.
    Sequential,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sidecar {
    position_ids: Option<PositionIds>,
}

impl PositionIds {
    /// The scheme a checkpoint asks for in its `culturelens.toml`, M-RoPE when it has none.
    pub fn for_model(dir: &Path) -> anyhow::Result<PositionIds> {
        let path: PathBuf = dir.join(SIDECAR);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PositionIds::Mrope),
            Err(e) => anyhow::bail!("{}: {e}", path.display()),
        };
        let s: Sidecar = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(s.position_ids.unwrap_or_default())
    }
}
