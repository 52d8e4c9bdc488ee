//! The culturelens command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use culturelens::bench::{self, BenchOptions};
use culturelens::gpu::{AdapterSelector, Gpu};
use culturelens::runner::{self, RunRequest};
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
        /// An image for vision-language models (the user turn becomes [image, text]).
        #[arg(long)]
        image: Option<PathBuf>,
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
        Command::Run { model, prompt, image, raw, max_new_tokens, dump } => {
            let req = RunRequest {
                model_dir: resolve_model_dir(&bundled_or(&model))?,
                prompt,
                image,
                raw,
                max_new_tokens,
                keep_prompt_logits: dump.is_some(),
            };
            let mut adapter = String::new();
            let out = runner::run(
                || {
                    let gpu = Gpu::new(&selector)?;
                    adapter = gpu.info.name.clone();
                    Ok(gpu)
                },
                &req,
            )?;
            println!("{}", out.answer);
            let g = &out.generation;
            let steps = g.new_tokens.len().saturating_sub(1).max(1);
            eprintln!(
                "[{adapter}: {} prompt tokens in {:.3} s ({:.1} tok/s), {} generated ({:.1} tok/s), ids {:?}]",
                out.prompt_ids.len(),
                g.prefill_seconds,
                out.prompt_ids.len() as f64 / g.prefill_seconds,
                g.new_tokens.len(),
                steps as f64 / g.decode_seconds.max(1e-9),
                g.new_tokens
            );
            if let Some(path) = dump {
                runner::write_dump(&path, &out.prompt_ids, &g.prompt_logits, out.vocab_size)?;
                eprintln!("wrote {} ({} positions x {} logits)", path.display(), out.prompt_ids.len(), out.vocab_size);
            }
            Ok(())
        }
        Command::Bench(opts) => {
            let gpu = Gpu::new(&selector)?;
            bench::run(&gpu, &opts)
        }
    }
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
