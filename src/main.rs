//! The culturelens command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use culturelens::bench::{self, BenchOptions};
use culturelens::gpu::{AdapterSelector, Gpu};
use culturelens::models::generate::generate_greedy;
use culturelens::models::CausalLm;
use culturelens::text::{ChatMessage, TextProcessor};
use culturelens::weights::resolve_model_dir;

/// The bundled default model, used when `run` is given no --model.
const BUNDLED_MODEL: &str = "assets/models/qwen2-tiny";

/// The bundled model relative to the working directory (a checkout), else in the source tree
/// this binary was built from.
fn bundled_or(model: &str) -> String {
    if model == BUNDLED_MODEL && !std::path::Path::new(model).is_dir() {
        return format!("{}/{BUNDLED_MODEL}", env!("CARGO_MANIFEST_DIR"));
    }
    model.to_string()
}

#[derive(Parser)]
#[command(
    name = "culturelens",
    version,
    about = "Find, score and ablate culture-sensitive neurons in VLMs, on any GPU"
)]
struct Cli {
    /// Adapter to use: an index from `culturelens devices` or part of its name
    /// (default: the first discrete GPU, else any).
    #[arg(long, global = true)]
    device: Option<AdapterSelector>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter: backend, driver, type, features, limits, cooperative-matrix shapes.
    Devices,
    /// Run a model on one prompt and print its answer.
    Run {
        /// Model directory, or a hub id present in the local HF cache.
        #[arg(long, default_value = BUNDLED_MODEL)]
        model: String,
        #[arg(long)]
        prompt: String,
        /// Feed the prompt as is, without the chat template.
        #[arg(long)]
        raw: bool,
        #[arg(long, default_value_t = 32)]
        max_new_tokens: usize,
        /// Write input_ids [T] i64 and logits [T, vocab] f32 of every prompt position (safetensors).
        #[arg(long)]
        dump: Option<PathBuf>,
    },
    /// Kernel and prefill throughput against the device's measured copy bandwidth and best matmul.
    Bench(BenchOptions),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let selector = cli.device.unwrap_or_default();
    match cli.command {
        Command::Devices => {
            let adapters = Gpu::list_adapters();
            if adapters.is_empty() {
                return Err(culturelens::gpu::GpuError::NoAdapter.into());
            }
            for a in adapters {
                println!("{a}");
            }
            Ok(())
        }
        Command::Run { model, prompt, raw, max_new_tokens, dump } => {
            let dir = resolve_model_dir(&bundled_or(&model))?;
            let text = TextProcessor::load(&dir)?;
            let ids = if raw {
                text.encode(&prompt, true)?
            } else {
                let rendered = text
                    .render_chat(&[ChatMessage::user_text(&prompt)], true)
                    .context("cannot apply the chat template (pass --raw to feed the prompt as is)")?;
                text.encode_prompt(&rendered)?
            };
            if ids.is_empty() {
                anyhow::bail!("the prompt encodes to no tokens");
            }
            let gpu = Gpu::new(&selector)?;
            let lm = CausalLm::load(&gpu, &dir)?;
            let mut eos = text.eos_token_ids();
            eos.extend(lm.config.eos_token_ids.iter().copied().filter(|id| !text.eos_token_ids().contains(id)));
            let out = generate_greedy(&lm.model, &ids, max_new_tokens, &eos, dump.is_some())?;
            let answer_ids: Vec<u32> = out.new_tokens.iter().copied().filter(|id| !eos.contains(id)).collect();
            println!("{}", text.decode(&answer_ids, true)?);
            let steps = out.new_tokens.len().saturating_sub(1).max(1);
            eprintln!(
                "[{}: {} prompt tokens in {:.3} s ({:.1} tok/s), {} generated ({:.1} tok/s), ids {:?}]",
                gpu.info.name,
                ids.len(),
                out.prefill_seconds,
                ids.len() as f64 / out.prefill_seconds,
                out.new_tokens.len(),
                steps as f64 / out.decode_seconds.max(1e-9),
                out.new_tokens
            );
            if let Some(path) = dump {
                write_dump(&path, &ids, &out.prompt_logits, lm.model.config.vocab_size)?;
                eprintln!("wrote {} ({} positions x {} logits)", path.display(), ids.len(), lm.model.config.vocab_size);
            }
            Ok(())
        }
        Command::Bench(opts) => {
            let gpu = Gpu::new(&selector)?;
            bench::run(&gpu, &opts)
        }
    }
}

fn write_dump(path: &std::path::Path, ids: &[u32], logits: &[f32], vocab: usize) -> anyhow::Result<()> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let ids64: Vec<u8> = ids.iter().flat_map(|&i| (i as i64).to_le_bytes()).collect();
    let lg: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensors = [
        ("input_ids", TensorView::new(Dtype::I64, vec![ids.len()], &ids64)?),
        ("logits", TensorView::new(Dtype::F32, vec![ids.len(), vocab], &lg)?),
    ];
    safetensors::serialize_to_file(tensors, None, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
