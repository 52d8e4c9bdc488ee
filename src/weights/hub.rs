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
    let cache = hub_cache();
    match cache.model(model.to_string()).get("config.json") {
        Some(config) => Ok(config.parent().map(Path::to_path_buf).unwrap_or_default()),
        None => anyhow::bail!(
            "--model {model}: not a directory, and not in the local Hugging Face cache at {} \
             (fetch it first, e.g. `huggingface-cli download {model}`)",
            cache.path().display()
        ),
    }
}

/// The hub cache the way huggingface_hub finds it: HF_HUB_CACHE (or the older
/// HUGGINGFACE_HUB_CACHE), else HF_HOME/hub, else ~/.cache/huggingface/hub.
fn hub_cache() -> hf_hub::Cache {
    ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"]
        .iter()
        .find_map(|v| std::env::var_os(v).filter(|p| !p.is_empty()))
        .map(|p| hf_hub::Cache::new(PathBuf::from(p)))
        .unwrap_or_else(hf_hub::Cache::from_env)
}

/// `--data` accepts a parquet file, a directory of shards, a JSONL file, or a dataset id
/// ("afaji/cvqa") in the local HF cache, which resolves to its snapshot folder (whose layout
/// `eval::dataset` reads).
pub fn resolve_dataset(data: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(data);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    let looks_like_id = data.split('/').count() == 2 && !data.starts_with('.') && !data.starts_with('/');
    if !looks_like_id {
        anyhow::bail!("--data {data}: no such file or directory");
    }
    let cache = hub_cache();
    let repo = cache.path().join(format!("datasets--{}", data.replace('/', "--")));
    let rev = std::fs::read_to_string(repo.join("refs").join("main")).map_err(|_| {
        anyhow::anyhow!(
            "--data {data}: not a file or directory, and not in the local Hugging Face cache at {} \
             (fetch it first, e.g. `huggingface-cli download --repo-type dataset {data}`)",
            cache.path().display()
        )
    })?;
    Ok(repo.join("snapshots").join(rev.trim()))
}
