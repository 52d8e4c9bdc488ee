//! A seeded mutation fuzz of every parser that reads user files: safetensors checkpoints,
//! CVQA parquet, PNG and JPEG images, statistics files and neuron-set files. Each mutant (byte
//! flips, truncations, insertions, overwritten integers) must give a value or an error: no panic,
//! no abort (which would end this process), and no hang (each case under a time limit).
//!
//! The default run takes 3000 mutants (about a second); a longer one runs the same harness for
//! FUZZ_SECONDS and prints the count of cases and outcomes:
//!
//! ```text
//! FUZZ_SECONDS=600 cargo test --release --test fuzz_parsers -- --nocapture
//! ```
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use culturelens::eval::dataset::{load_examples, Lang};
use culturelens::neurons::accum::Accumulated;
use culturelens::neurons::stats_file::{StatsFile, StatsMeta, FORMAT};
use culturelens::pipeline::identify::NeuronSets;
use culturelens::vision::image_input::decode_rgb;
use culturelens::weights::WeightStore;

/// How long one fuzz run goes on.
#[derive(Clone, Copy)]
enum Run {
    Cases(usize),
    For(Duration),
}

/// Longest a single case may take: a parser that crawls on a crafted file is a denial of
/// service (one parquet mutant once took 20 s through small reads); real cases take milliseconds.
const CASE_LIMIT: Duration = Duration::from_secs(5);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random edit of `bytes`: flips, a truncation, an insertion, or an extreme integer.
fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    // Most structure sits in headers and footers: aim there half the time.
    let pos = |rng: &mut Rng, len: usize| match rng.below(4) {
        0 => rng.below(len.min(256)),
        1 => len.saturating_sub(1 + rng.below(len.min(256))),
        _ => rng.below(len),
    };
    match rng.below(5) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = pos(rng, b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        1 => b.truncate(pos(rng, b.len())),
        2 => {
            let i = pos(rng, b.len());
            let junk: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
            b.splice(i..i, junk);
        }
        3 => {
            let i = pos(rng, b.len().saturating_sub(8));
            let v = [u64::MAX, 0, 1 << 40, i64::MAX as u64, 0x7FFF_FFFF][rng.below(5)];
            let n = 8.min(b.len() - i);
            b[i..i + n].copy_from_slice(&v.to_le_bytes()[..n]);
        }
        _ => {
            let i = pos(rng, b.len());
            let n = rng.below(b.len() - i + 1);
            b.drain(i..i + n);
        }
    }
    b
}

/// What a case came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Parsed,
    Error,
}

/// The parsers under test, each reading a file written into `dir`.
struct Target {
    name: &'static str,
    file: &'static str,
    seed: Vec<u8>,
    parse: fn(&Path) -> Outcome,
}

fn outcome<T, E>(r: Result<T, E>) -> Outcome {
    if r.is_ok() {
        Outcome::Parsed
    } else {
        Outcome::Error
    }
}

fn read(p: &str) -> Vec<u8> {
    std::fs::read(common::root().join(p)).unwrap()
}

fn stats_seed(dir: &Path) -> Vec<u8> {
    let mut acc = Accumulated::zeros(2, 2, 3);
    let words: Vec<u32> =
        (0..2 * 2 * 3).flat_map(|n| [n % 3, (0.5 * n as f32).to_bits(), 0, (0.25 * n as f32).to_bits(), 0]).collect();
    acc.add_words(&words, &[5, 7]).unwrap();
    let meta: StatsMeta = serde_json::from_value(serde_json::json!({
        "format": FORMAT, "culturelens_version": "0", "model": "m", "model_fingerprint": "f",
        "architecture": "Qwen2_5_VLForConditionalGeneration", "layers": 2, "width": 3, "dataset": "d",
        "dataset_fingerprint": "g", "group_by": "country", "lang": "en", "position_rule": "all",
        "groups": ["A", "B"], "examples_per_group": [1, 1], "examples": 2, "chunk_examples": 1,
        "max_batch_tokens": 64, "shard": [0, 1], "chunks_done": 2, "complete": true
    }))
    .unwrap();
    let f = StatsFile { meta, acc, example_index: vec![0, 1], option_logits: vec![vec![0.5; 4], vec![1.0; 4]] };
    let p = dir.join("seed.safetensors");
    f.save(&p).unwrap();
    std::fs::read(p).unwrap()
}

fn targets(dir: &Path) -> Vec<Target> {
    let jpeg = {
        let img = image::RgbImage::from_fn(40, 24, |x, y| image::Rgb([x as u8 * 5, y as u8 * 9, 77]));
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).unwrap();
        out
    };
    let neurons = serde_json::json!({
        "method": "cas", "k": 2, "stats": "s", "model": "m", "model_fingerprint": "f", "dataset_fingerprint": "g",
        "position_rule": "all", "layers": 2, "width": 3, "groups": ["A", "B"],
        "sets": [{"group": "A", "neurons": [[0, 1], [1, 2]], "scores": [0.5, 0.25]},
                 {"group": "B", "neurons": [[1, 0]], "scores": [0.1]}]
    });
    vec![
        Target {
            name: "safetensors",
            file: "model/model.safetensors",
            seed: read("tests/fixtures/qwen2-tiny/model.safetensors"),
            parse: |p| {
                let r = WeightStore::open(p.parent().unwrap()).and_then(|s| {
                    let names: Vec<String> = s.names().map(String::from).collect();
                    names.iter().try_for_each(|n| s.get(n).and_then(|t| t.check_finite()))
                });
                outcome(r)
            },
        },
        Target {
            name: "parquet",
            file: "cvqa.parquet",
            seed: read("assets/data/mini-cvqa/test.parquet"),
            parse: |p| outcome(load_examples(p, Lang::En)),
        },
        Target {
            name: "png",
            file: "image.png",
            seed: read("tests/fixtures/qwen2_5_vl-tiny/image.png"),
            parse: |p| outcome(decode_rgb(&std::fs::read(p).unwrap(), "fuzz")),
        },
        Target {
            name: "jpeg",
            file: "image.jpg",
            seed: jpeg,
            parse: |p| outcome(decode_rgb(&std::fs::read(p).unwrap(), "fuzz")),
        },
        Target {
            name: "statistics",
            file: "stats.safetensors",
            seed: stats_seed(dir),
            parse: |p| outcome(StatsFile::load(p)),
        },
        Target {
            name: "neuron sets",
            file: "neurons_cas.json",
            seed: serde_json::to_vec_pretty(&neurons).unwrap(),
            parse: |p| outcome(NeuronSets::load(p)),
        },
    ]
}

/// Runs mutants round-robin over the targets: `Cases(n)` of them, or as many as fit in
/// `For(duration)`; returns the outcome counts per target.
fn fuzz(run: Run, seed: u64) -> BTreeMap<&'static str, BTreeMap<Outcome, usize>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("model")).unwrap();
    let targets = targets(dir.path());
    for t in &targets {
        assert_eq!((t.parse)(&write(dir.path(), t, &t.seed)), Outcome::Parsed, "{}: the seed must parse", t.name);
    }
    let mut rng = Rng(seed);
    let mut counts: BTreeMap<&'static str, BTreeMap<Outcome, usize>> = BTreeMap::new();
    let started = Instant::now();
    let mut n = 0;
    while match run {
        Run::Cases(cases) => n < cases,
        Run::For(budget) => started.elapsed() < budget,
    } {
        let t = &targets[n % targets.len()];
        let mutant = mutate(&t.seed, &mut rng);
        let path = write(dir.path(), t, &mutant);
        let case = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| (t.parse)(&path)));
        let took = case.elapsed();
        let keep = || {
            let p = std::env::temp_dir().join(format!("culturelens-fuzz-{}-{n}", t.name.replace(' ', "_")));
            std::fs::write(&p, &mutant).unwrap();
            p
        };
        match result {
            Ok(o) => *counts.entry(t.name).or_default().entry(o).or_default() += 1,
            Err(_) => panic!("{}: mutant {n} panicked (kept at {})", t.name, keep().display()),
        }
        assert!(took < CASE_LIMIT, "{}: mutant {n} took {took:?} (kept at {})", t.name, keep().display());
        n += 1;
    }
    counts
}

fn write(dir: &Path, t: &Target, bytes: &[u8]) -> PathBuf {
    let p = dir.join(t.file);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// 3000 mutants (about a second); with FUZZ_SECONDS set, as many as fit in that time, from
/// FUZZ_SEED (default 1), with the count of cases and outcomes printed.
#[test]
fn mutants_of_every_input_format() {
    let started = Instant::now();
    let env = |k: &str| {
        let v = std::env::var(k).ok()?;
        Some(v.parse::<u64>().unwrap_or_else(|_| panic!("{k}={v:?} is not a whole number")))
    };
    let counts = match env("FUZZ_SECONDS") {
        Some(secs) => fuzz(Run::For(Duration::from_secs(secs)), env("FUZZ_SEED").unwrap_or(1)),
        None => fuzz(Run::Cases(3000), 0xC0FFEE),
    };
    let total: usize = counts.values().flat_map(|c| c.values()).sum();
    eprintln!("{total} mutants in {:.1} s, none panicked, aborted or hung:", started.elapsed().as_secs_f64());
    for (name, c) in &counts {
        eprintln!("  {name}: {c:?}");
    }
}
