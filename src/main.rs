//! The culturelens command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use clap::{Parser, Subcommand};
use culturelens::bench::{self, BenchOptions};
use culturelens::gpu::{by_kernel, AdapterSelector, Gpu, PrecisionRequest};
use culturelens::pipeline::ablate::{ablate, AblateOptions, Ablation};
use culturelens::pipeline::cli::{
    bundled, parse_layer_band, BandArgs, DataArgs, KArgs, ModeArgs, PassArgs, RandomArgs, RuleArg, SignificanceArgs,
    WeightArg, BUNDLED_VL_MODEL,
};
use culturelens::pipeline::collect::{collect, merge, CollectOptions, MIN_CHECKPOINT_SECONDS};
use culturelens::pipeline::data::SplitPart;
use culturelens::pipeline::identify::{identify, parse_method, IdentifyOptions};
use culturelens::pipeline::inspect::{inspect, InspectOptions};
use culturelens::pipeline::run::{pipeline, PipelineOptions};
use culturelens::pipeline::shard::shard_arg;
use culturelens::pipeline::steer::{check_scales, culture_edits, steer, SteerOptions, DEFAULT_SCALES};
use culturelens::plant::{plant, PlantOptions};
use culturelens::report::{load_steer_results, steer_text, summary_text, write_report};
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
    /// Compute mode (docs/numerics.md): `fast` runs matmuls on tensor cores (f16 operands, f32
    /// accumulators, logits NMSE ≤ 1e-3), `exact` in f32 (NMSE ≤ 1e-8); `auto` is fast where
    /// the adapter offers f16 cooperative matrices.
    #[arg(long, global = true, value_enum, default_value_t)]
    precision: PrecisionRequest,
    /// Time every GPU dispatch (timestamp queries) and print the total per kernel at exit.
    #[arg(long, global = true)]
    profile_kernels: bool,
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
        /// Intervene on a culture's neurons while generating: the directory `identify` wrote.
        #[arg(long, requires = "culture")]
        neurons: Option<PathBuf>,
        /// The culture whose set is applied (with --neurons).
        #[arg(long, requires = "neurons")]
        culture: Option<String>,
        /// The method whose set is applied.
        #[arg(long, default_value = "cas")]
        method: String,
        #[command(flatten)]
        mode: ModeArgs,
        /// Statistics for --mode mean (default: those the sets came from).
        #[arg(long)]
        stats: Option<PathBuf>,
        /// Also answer without the intervention and print both.
        #[arg(long, requires = "neurons")]
        compare: bool,
    },
    /// Dose-response: accuracy per culture as one culture's neurons are scaled over a sweep.
    Steer {
        /// Vision-language model (Qwen2.5-VL, or LLaVA-NeXT with a Mistral or Qwen2 LM): a
        /// directory, or a hub id in the local HF cache.
        #[arg(long, default_value = BUNDLED_VL_MODEL)]
        model: String,
        #[command(flatten)]
        data: DataArgs,
        /// The directory identify wrote.
        #[arg(long, default_value = "culturelens-out/neurons")]
        neurons: PathBuf,
        /// The culture whose set is scaled.
        #[arg(long)]
        culture: String,
        #[arg(long, default_value = "cas")]
        method: String,
        /// The sweep: a' = s·a for each s (0 ablates, 1 is the model, > 1 steers).
        #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SCALES.to_vec(), allow_negative_numbers = true)]
        scales: Vec<f32>,
        /// Statistics for the baseline answers (default: those the sets came from).
        #[arg(long)]
        stats: Option<PathBuf>,
        #[command(flatten)]
        passes: PassArgs,
        /// Directory for steer_<method>_<culture>.json, its CSV and figures/steer_<method>_<culture>.{png,svg}.
        #[arg(long, default_value = "culturelens-out")]
        out: PathBuf,
    },
    /// Per-culture statistics of every LM neuron over a multiple-choice VQA data set.
    Collect {
        /// Vision-language model (Qwen2.5-VL, or LLaVA-NeXT with a Mistral or Qwen2 LM, e.g.
        /// LLaVA-v1.6-Mistral, Pangea): a directory, or a hub id in the local HF cache.
        #[arg(long, default_value = BUNDLED_VL_MODEL)]
        model: String,
        #[command(flatten)]
        data: DataArgs,
        /// Prompt positions that count: all, text, image or last.
        #[arg(long, value_enum, default_value = "all")]
        positions: RuleArg,
        /// Directory for stats.safetensors and stats.json.
        #[arg(long, default_value = "culturelens-out/stats")]
        out: PathBuf,
        /// Rows per chunk, the unit of checkpoints and shards; a killed run restarted with the same
        /// command resumes from the last checkpoint.
        #[arg(long, default_value_t = 64)]
        checkpoint_every: usize,
        /// Write a checkpoint at most this often (seconds).
        #[arg(long, default_value_t = MIN_CHECKPOINT_SECONDS)]
        min_checkpoint_seconds: f64,
        /// Token budget of one packed batch.
        #[arg(long, default_value_t = 4096)]
        batch_tokens: usize,
        /// Run shard I of N (chunks I, I+N, …); combine them with `culturelens merge`. `auto`
        /// takes I and N from a Slurm job array (SLURM_ARRAY_TASK_ID/COUNT) or a Kubernetes
        /// Indexed Job (JOB_COMPLETION_INDEX, with N from --shard-count).
        #[arg(long)]
        shard: Option<String>,
        /// N for `--shard auto` where the scheduler does not give it (Kubernetes: the completions).
        #[arg(long)]
        shard_count: Option<usize>,
        /// What weighs the same in μ and p: every counted position (token) or every question
        /// (example; long prompts and large images otherwise dominate).
        #[arg(long, value_enum, default_value = "token")]
        weight: WeightArg,
    },
    /// Combine the shards of one collect run into exactly the single-run statistics.
    Merge {
        #[arg(long, default_value = "culturelens-out/stats")]
        out: PathBuf,
        /// The shard files (stats.shard-I-of-N.safetensors).
        #[arg(required = true)]
        shards: Vec<PathBuf>,
    },
    /// Each culture's neurons by CAS, LAPE, LAP and/or MAD.
    Identify {
        /// stats.safetensors, or the directory collect wrote.
        #[arg(long, default_value = "culturelens-out/stats")]
        stats: PathBuf,
        /// cas, lape, lap, mad, random (the control), a comma-separated list, or all.
        #[arg(long, default_value = "all")]
        method: String,
        #[command(flatten)]
        k: KArgs,
        /// LAPE keeps this share of all neurons before assigning them to cultures.
        #[arg(long, default_value_t = 0.01)]
        lape_top_rate: f64,
        #[command(flatten)]
        random: RandomArgs,
        #[arg(long, default_value = "culturelens-out/neurons")]
        out: PathBuf,
    },
    /// Accuracy per culture with each culture's neurons ablated: matrix, self/cross Δ, gap, flips.
    Ablate {
        /// Vision-language model (Qwen2.5-VL, or LLaVA-NeXT with a Mistral or Qwen2 LM, e.g.
        /// LLaVA-v1.6-Mistral, Pangea): a directory, or a hub id in the local HF cache.
        #[arg(long, default_value = BUNDLED_VL_MODEL)]
        model: String,
        #[command(flatten)]
        data: DataArgs,
        /// The directory identify wrote.
        #[arg(long, default_value = "culturelens-out/neurons")]
        neurons: PathBuf,
        /// cas, lape, lap, mad, random or a comma-separated list (default: every method identify
        /// wrote).
        #[arg(long)]
        method: Option<String>,
        #[command(flatten)]
        mode: ModeArgs,
        /// Cut every set to a band of layers: A..B (A to B-1) or A..=B, 0-based.
        #[arg(long)]
        layers: Option<String>,
        #[command(flatten)]
        bands: BandArgs,
        #[command(flatten)]
        significance: SignificanceArgs,
        /// Statistics for --mode mean and the baseline (default: those the sets came from).
        #[arg(long)]
        stats: Option<PathBuf>,
        #[command(flatten)]
        passes: PassArgs,
        /// Directory for ablation.json.
        #[arg(long, default_value = "culturelens-out")]
        out: PathBuf,
    },
    /// Tables (Markdown, CSV, JSON), figures (PNG, SVG) and report.html from ablation.json.
    Report {
        /// ablation.json or the directory holding it.
        #[arg(long = "in", default_value = "culturelens-out")]
        input: PathBuf,
        #[arg(long, default_value = "culturelens-out")]
        out: PathBuf,
    },
    /// collect → identify → ablate → report; with no arguments, the bundled demo.
    Pipeline {
        /// Vision-language model (Qwen2.5-VL, or LLaVA-NeXT with a Mistral or Qwen2 LM, e.g.
        /// LLaVA-v1.6-Mistral, Pangea): a directory, or a hub id in the local HF cache.
        #[arg(long, default_value = BUNDLED_VL_MODEL)]
        model: String,
        #[command(flatten)]
        data: DataArgs,
        /// Output folder: stats/, neurons/, ablation.json and the report (summary.json, report.html, …).
        #[arg(long, default_value = "culturelens-out")]
        out: PathBuf,
        /// cas, lape, lap, mad, random (the control), a comma-separated list, or all.
        #[arg(long, default_value = "all")]
        methods: String,
        #[command(flatten)]
        k: KArgs,
        #[command(flatten)]
        random: RandomArgs,
        #[command(flatten)]
        bands: BandArgs,
        #[command(flatten)]
        significance: SignificanceArgs,
        /// Prompt positions that count: all, text, image or last.
        #[arg(long, value_enum, default_value = "all")]
        positions: RuleArg,
        #[command(flatten)]
        mode: ModeArgs,
        /// Rows per statistics checkpoint.
        #[arg(long, default_value_t = 64)]
        checkpoint_every: usize,
        #[command(flatten)]
        passes: PassArgs,
        /// What weighs the same in μ and p: every counted position (token) or every question (example).
        #[arg(long, value_enum, default_value = "token")]
        weight: WeightArg,
        /// With --eval-split: also identify on the evaluation part and evaluate on the other,
        /// and pool both folds (fold-1/ and fold-2/ keep each).
        #[arg(long, requires = "eval_split")]
        cross_fit: bool,
    },
    /// What the selected neurons are: μ and p per culture, top activating examples (with
    /// thumbnails in inspect.html), overlaps between methods and between cultures.
    Inspect {
        /// Vision-language model: a directory, or a hub id in the local HF cache.
        #[arg(long, default_value = BUNDLED_VL_MODEL)]
        model: String,
        #[command(flatten)]
        data: DataArgs,
        /// The directory identify wrote.
        #[arg(long, default_value = "culturelens-out/neurons")]
        neurons: PathBuf,
        /// Methods to inspect, comma-separated (default: every method identify wrote).
        #[arg(long)]
        method: Option<String>,
        /// Statistics for μ and p (default: those the sets came from).
        #[arg(long)]
        stats: Option<PathBuf>,
        /// Top activating examples per neuron.
        #[arg(long, default_value_t = 5)]
        top: usize,
        #[arg(long, default_value_t = 4096)]
        batch_tokens: usize,
        /// Directory for inspect.json, inspect.html, inspect_neurons.csv and overlap.csv.
        #[arg(long, default_value = "culturelens-out/inspect")]
        out: PathBuf,
    },
    /// Plant known culture neurons into a Qwen2.5-VL or LLaVA-NeXT checkpoint and write a quiz
    /// that needs them.
    Plant {
        /// The model to plant into (e.g. tests/fixtures/qwen2_5_vl-tiny or
        /// tests/fixtures/llava_next-mistral-tiny).
        #[arg(long)]
        base: PathBuf,
        /// TOML list of cultures with their places (see assets/plant/cultures.toml).
        #[arg(long)]
        cultures: PathBuf,
        /// Writes OUT/model (with planted_neurons.json) and OUT/quiz.parquet.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 24)]
        questions_per_culture: usize,
        #[arg(long, default_value_t = 4)]
        neurons_per_culture: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Kernel and prefill throughput against the device's measured copy bandwidth and best matmul.
    Bench(BenchOptions),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let selector = cli.device.unwrap_or_default();
    let precision = cli.precision;
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
        Command::Run {
            model,
            prompt,
            image,
            raw,
            max_new_tokens,
            dump,
            neurons,
            culture,
            method,
            mode,
            stats,
            compare,
        } => {
            let model_dir = resolve_model_dir(&bundled_or(&model))?;
            let mode = mode.mode()?;
            // What the intervened answer is labelled with next to the unmodified one.
            let (edits, intervened) = match (&neurons, &culture) {
                (Some(dir), Some(c)) => {
                    let m = one_method(&method)?;
                    let edits = culture_edits(&model_dir, dir, m, c, mode, stats.as_deref())?;
                    (edits, Some(format!("{c} {} {}", m.name(), mode.name())))
                }
                _ => (Vec::new(), None),
            };
            let req = RunRequest {
                model_dir,
                prompt,
                image,
                raw,
                max_new_tokens,
                keep_prompt_logits: dump.is_some(),
                edits,
                compare,
            };
            let mut adapter = String::new();
            let out = runner::run(
                || {
                    let gpu = open_gpu(&selector, precision)?;
                    adapter = gpu.info.name.clone();
                    Ok(gpu)
                },
                &req,
            )?;
            match (&out.unmodified, &intervened) {
                (Some((_, plain)), Some(what)) => {
                    println!("unmodified: {plain}");
                    println!("{what}: {}", out.answer);
                }
                _ => println!("{}", out.answer),
            }
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
        Command::Collect {
            model,
            data,
            positions,
            out,
            checkpoint_every,
            min_checkpoint_seconds,
            batch_tokens,
            shard,
            shard_count,
            weight,
        } => {
            let shard = shard.as_deref().map(|s| shard_arg(s, shard_count)).transpose()?.unwrap_or((0, 1));
            let gpu = open_gpu(&selector, precision)?;
            let o = CollectOptions {
                model: bundled(&model, BUNDLED_VL_MODEL),
                data: data.options(SplitPart::Identify)?,
                rule: positions.rule(),
                out,
                chunk_examples: checkpoint_every,
                min_checkpoint_seconds,
                max_batch_tokens: batch_tokens,
                shard,
                weighting: weight.weighting(),
                progress: true,
            };
            let path = collect(&gpu, &o)?;
            println!("{}", path.display());
            Ok(())
        }
        Command::Merge { out, shards } => {
            println!("{}", merge(&shards, &out)?.display());
            Ok(())
        }
        Command::Identify { stats, method, k, lape_top_rate, random, out } => {
            let o = IdentifyOptions {
                stats,
                methods: parse_method(&method)?,
                k: k.choice(),
                lape_top_rate,
                random: random.control()?,
                out,
            };
            for p in identify(&o)? {
                println!("{}", p.display());
            }
            Ok(())
        }
        Command::Ablate { model, data, neurons, method, mode, layers, bands, significance, stats, passes, out } => {
            let gpu = open_gpu(&selector, precision)?;
            let o = AblateOptions {
                model: bundled(&model, BUNDLED_VL_MODEL),
                data: data.options(SplitPart::Evaluate)?,
                neurons,
                methods: method.as_deref().map(parse_method).transpose()?,
                mode: mode.mode()?,
                stats,
                max_batch_tokens: passes.batch_tokens,
                max_fused_tokens: passes.fused_tokens,
                layer_band: layers
                    .as_deref()
                    .map(|l| parse_layer_band(l).map_err(|e| anyhow::anyhow!("--layers {e}")))
                    .transpose()?,
                bands: bands.bands,
                band_methods: bands.methods()?,
                significance: significance.options()?,
                out: out.clone(),
                progress: true,
            };
            ablate(&gpu, &o)?;
            println!("{}", Ablation::path(&out).display());
            Ok(())
        }
        Command::Steer { model, data, neurons, culture, method, scales, stats, passes, out } => {
            check_scales(&scales)?;
            let method = one_method(&method)?;
            let gpu = open_gpu(&selector, precision)?;
            let o = SteerOptions {
                model: bundled(&model, BUNDLED_VL_MODEL),
                data: data.options(SplitPart::Evaluate)?,
                neurons,
                method,
                culture,
                scales,
                stats,
                max_batch_tokens: passes.batch_tokens,
                max_fused_tokens: passes.fused_tokens,
                out,
                progress: true,
            };
            let r = steer(&gpu, &o)?;
            print!("{}", steer_text(&r));
            println!("{}", o.json_path().display());
            Ok(())
        }
        Command::Inspect { model, data, neurons, method, stats, top, batch_tokens, out } => {
            let methods = method.as_deref().map(parse_method).transpose()?;
            let gpu = open_gpu(&selector, precision)?;
            let o = InspectOptions {
                model: bundled(&model, BUNDLED_VL_MODEL),
                data: data.options(SplitPart::Identify)?,
                neurons,
                methods,
                stats,
                top,
                max_batch_tokens: batch_tokens,
                out: out.clone(),
                progress: true,
            };
            let r = inspect(&gpu, &o)?;
            for (m, sets) in &r.methods {
                let n: usize = sets.iter().map(|s| s.neurons.len()).sum();
                println!("{m}: {n} neurons in {} sets", sets.len());
            }
            println!("{}", out.join("inspect.html").display());
            Ok(())
        }
        Command::Report { input, out } => {
            let a = Ablation::load(&input)?;
            let dir =
                if input.is_dir() { input.clone() } else { input.parent().map(PathBuf::from).unwrap_or_default() };
            write_report(&out, &a.summary, &a.extras, &load_steer_results(&dir)?)?;
            println!("{}", out.join("report.html").display());
            Ok(())
        }
        Command::Pipeline {
            model,
            data,
            out,
            methods: m,
            k,
            random,
            bands,
            significance,
            positions,
            mode,
            checkpoint_every,
            passes,
            weight,
            cross_fit,
        } => {
            let gpu = open_gpu(&selector, precision)?;
            let o = PipelineOptions {
                model: bundled(&model, BUNDLED_VL_MODEL),
                data: data.options(SplitPart::Evaluate)?,
                out: out.clone(),
                methods: parse_method(&m)?,
                k: k.choice(),
                rule: positions.rule(),
                mode: mode.mode()?,
                chunk_examples: checkpoint_every,
                max_batch_tokens: passes.batch_tokens,
                max_fused_tokens: passes.fused_tokens,
                lape_top_rate: 0.01,
                random: random.control()?,
                bands: bands.bands,
                band_methods: bands.methods()?,
                significance: significance.options()?,
                cross_fit,
                weighting: weight.weighting(),
                progress: true,
            };
            let s = pipeline(&gpu, &o)?;
            print!("{}", summary_text(&s));
            println!("report: {}", out.join("report.html").display());
            Ok(())
        }
        Command::Plant { base, cultures, out, questions_per_culture, neurons_per_culture, seed } => {
            let o = PlantOptions {
                questions_per_culture,
                neurons_per_culture,
                seed,
                ..PlantOptions::new(base, cultures, out)
            };
            let r = plant(&o)?;
            for c in &r.cultures {
                println!("{}: letter {} neurons {:?}", c.name, culturelens::eval::mc::LETTERS[c.letter], c.neurons);
            }
            println!(
                "model: {}\nquiz: {}\nplanted neurons: {}",
                r.model_dir.display(),
                r.quiz.display(),
                r.manifest.display()
            );
            Ok(())
        }
        Command::Bench(opts) => {
            let gpu = open_gpu(&selector, precision)?;
            bench::run(&gpu, &opts)
        }
    }
}

/// One method by name (`random` included).
fn one_method(name: &str) -> anyhow::Result<culturelens::neurons::Method> {
    match parse_method(name)?.as_slice() {
        [m] => Ok(*m),
        _ => anyhow::bail!("--method {name}: give one method"),
    }
}

/// The device this process opened, kept for `--profile-kernels`.
static OPENED: OnceLock<(Arc<Gpu>, Instant)> = OnceLock::new();
static PROFILE: AtomicBool = AtomicBool::new(false);
static PROCESS_START: OnceLock<Instant> = OnceLock::new();

fn open_gpu(selector: &AdapterSelector, precision: PrecisionRequest) -> anyhow::Result<Arc<Gpu>> {
    let gpu = Gpu::open(selector, precision)?;
    if PROFILE.load(Ordering::Relaxed) {
        if !gpu.has_timestamps() {
            eprintln!("--profile-kernels: {} has no timestamp queries; nothing will be timed", gpu.info.name);
        }
        gpu.profiler.start();
    }
    let _ = OPENED.set((gpu.clone(), Instant::now()));
    Ok(gpu)
}

/// Per-kernel GPU time of the whole run, largest first.
fn print_kernel_profile() {
    let Some((gpu, opened)) = OPENED.get() else { return };
    let _ = gpu.wait();
    if let (Some(start), Some(first)) = (PROCESS_START.get(), gpu.first_dispatch.get()) {
        eprintln!(
            "startup: first dispatch submitted {:.3} s after the process started ({:.3} s after the device opened); \
             {} pipelines compiled in all",
            first.duration_since(*start).as_secs_f64(),
            first.duration_since(*opened).as_secs_f64(),
            gpu.pipelines.len()
        );
    }
    let totals = by_kernel(&gpu.profiler.stop());
    let all: f64 = totals.iter().map(|k| k.seconds).sum();
    eprintln!(
        "kernel profile: {all:.2} s of GPU time in {} dispatches, {:.2} s since the device opened",
        totals.iter().map(|k| k.calls).sum::<usize>(),
        opened.elapsed().as_secs_f64()
    );
    eprintln!("{:>9} {:>6} {:>9}  kernel", "seconds", "share", "calls");
    for k in &totals {
        eprintln!("{:>9.3} {:>5.1}% {:>9}  {}", k.seconds, 100.0 * k.seconds / all.max(1e-12), k.calls, k.kernel);
    }
}

fn main() -> ExitCode {
    PROCESS_START.get_or_init(Instant::now);
    let cli = Cli::parse();
    PROFILE.store(cli.profile_kernels, Ordering::Relaxed);
    let result = run(cli);
    if PROFILE.load(Ordering::Relaxed) {
        print_kernel_profile();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
