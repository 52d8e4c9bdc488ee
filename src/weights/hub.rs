use std::path::{Path, PathBuf};

/// `--model` accepts a directory, or a hub id ("Qwen/Qwen2.5-VL-7B-Instruct") already present
/// in the local HF cache (HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub). Nothing is downloaded.
pub fn resolve_model_dir(model: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(model);
    if p.is_dir() {
        return Ok(p.to_path_buf());
    }
    if p.exists() {
        anyhow::bail!("--model {model}: expected a model directory (with config.json), found a file");
    }
    let looks_like_id = model.split('/').count() == 2 && !model.starts_with('.') && !model.starts_with('/');
    if !looks_like_id {
        anyhow::bail!("--model {model}: no such directory");
    }
    let cache = hf_hub::Cache::from_env();
    match cache.model(model.to_string()).get("config.json") {
        Some(config) => Ok(config.parent().map(Path::to_path_buf).unwrap_or_default()),
        None => anyhow::bail!(
            "--model {model}: not a directory, and not in the local Hugging Face cache at {} \
             (fetch it first, e.g. `huggingface-cli download {model}`)",
            cache.path().display()
        ),
    }
}
