//! `plant` end to end on the tiny random Qwen2.5-VL fixture: the planted model answers its quiz,
//! CAS and MAD find the planted neurons from statistics, and ablating a culture's CAS set breaks
//! that culture only. Plus the input errors.
mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{fixture_dir, gpu};
use culturelens::eval::dataset::{group, load_examples, GroupBy, Grouped, Lang};
use culturelens::eval::mc::{option_token_ids, pick, PositionRule};
use culturelens::eval::score::{score_examples, ScoreOptions, Scored};
use culturelens::models::{NeuronStats, VisionLanguageModel};
use culturelens::neurons::methods::{select, GroupStats, Method};
use culturelens::plant::spec::{load_cultures, parse_cultures};
use culturelens::plant::{plant, PlantOptions, PlantReport};
use culturelens::text::TextProcessor;
use culturelens::weights::WeightStore;

fn cultures_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/plant/cultures.toml")
}

/// One plant for the whole binary (the tempdir lives as long as the process).
fn planted() -> &'static (tempfile::TempDir, PlantReport) {
    static P: OnceLock<(tempfile::TempDir, PlantReport)> = OnceLock::new();
    P.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let opts = PlantOptions::new(fixture_dir("qwen2_5_vl-tiny"), cultures_file(), dir.path().join("out"));
        let report = plant(&opts).unwrap_or_else(|e| panic!("{e:#}"));
        (dir, report)
    })
}

struct Vlm {
    model: VisionLanguageModel,
    text: TextProcessor,
    letters: Vec<u32>,
}

impl Vlm {
    fn load(dir: &Path) -> Vlm {
        let text = TextProcessor::load(dir).unwrap();
        let letters = option_token_ids(&text, 4).unwrap();
        Vlm { model: VisionLanguageModel::load(&gpu(), dir).unwrap(), text, letters }
    }

    fn score(&self, quiz: &Grouped, stats: Option<&NeuronStats>) -> Scored {
        let opts = ScoreOptions { stats, rule: PositionRule::All, max_batch_tokens: 4096 };
        score_examples(&self.model, &self.text, &quiz.examples, &self.letters, &opts, |_, _| {}).unwrap()
    }

    /// Per-group accuracy in [0, 1].
    fn accuracy(&self, quiz: &Grouped, stats: Option<&NeuronStats>) -> Vec<f64> {
        accuracy(quiz, &self.score(quiz, stats))
    }
}

fn accuracy(quiz: &Grouped, s: &Scored) -> Vec<f64> {
    let mut right = vec![0usize; quiz.names.len()];
    for ((g, ex), logits) in quiz.examples.iter().zip(&s.option_logits) {
        right[*g] += (Some(pick(logits)) == ex.label) as usize;
    }
    right.iter().zip(quiz.counts()).map(|(&r, n)| r as f64 / n as f64).collect()
}

fn load_quiz(report: &PlantReport) -> Grouped {
    let rows = load_examples(&report.quiz, Lang::En).unwrap();
    group(rows, GroupBy::Country, 1, None, None).unwrap()
}

#[test]
fn planted_neurons_are_found_and_ablating_them_breaks_only_their_culture() {
    let t0 = std::time::Instant::now();
    let (_dir, report) = planted();
    let quiz = load_quiz(report);
    let names: Vec<&str> = report.cultures.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(quiz.names, names, "quiz groups come in cultures-file order");
    let vlm = Vlm::load(&report.model_dir);
    let c = &vlm.model.config().text;
    let (layers, width) = (c.num_hidden_layers, c.intermediate_size);
    let groups = quiz.names.len();

    // 1. The planted model answers its quiz.
    let stats = NeuronStats::new(&gpu(), groups, layers, width).unwrap();
    let scored = vlm.score(&quiz, Some(&stats));
    let base = accuracy(&quiz, &scored);
    eprintln!("base accuracy per culture {:?}: {base:?}", quiz.names);
    for (name, a) in quiz.names.iter().zip(&base) {
        assert!(*a >= 0.95, "{name}: base accuracy {a}");
    }

    // 2. CAS and MAD at k = planted count recover the planted neurons.
    let sums = stats.read().unwrap();
    let gs = GroupStats {
        groups,
        layers,
        width,
        count_pos: sums.count_pos.iter().map(|&n| n as f64).collect(),
        sum: sums.sum,
        sum_sq: sums.sum_sq,
        positions: scored.positions.clone(),
    };
    let planted_flat: Vec<Vec<usize>> =
        report.cultures.iter().map(|c| c.neurons.iter().map(|&(l, n)| l * width + n).collect()).collect();
    let k = planted_flat[0].len();
    let mut cas_sets = Vec::new();
    for method in [Method::Cas, Method::Mad] {
        let sets = select(&gs, method, k, 0.01);
        let recall: Vec<f64> = sets
            .iter()
            .zip(&planted_flat)
            .map(|(got, want)| want.iter().filter(|n| got.contains(n)).count() as f64 / want.len() as f64)
            .collect();
        eprintln!("{} recall per culture: {recall:?}", method.name());
        for (name, r) in quiz.names.iter().zip(&recall) {
            assert!(*r >= 0.9, "{}: {name} recall {r}", method.name());
        }
        if method == Method::Cas {
            cas_sets = sets;
        }
    }

    // 3. Ablating a culture's CAS set breaks that culture and leaves the others alone.
    let intervention = &vlm.model.decoder().intervention;
    for (g, set) in cas_sets.iter().enumerate() {
        let mut keep = vec![1.0f32; layers * width];
        set.iter().for_each(|&n| keep[n] = 0.0);
        intervention.set_mask(&keep).unwrap();
        let after = vlm.accuracy(&quiz, None);
        intervention.reset();
        let delta: Vec<f64> = after.iter().zip(&base).map(|(a, b)| a - b).collect();
        eprintln!("ablate {}: accuracy deltas {delta:?}", quiz.names[g]);
        assert!(delta[g] <= -0.5, "{}: own accuracy moved only {}", quiz.names[g], delta[g]);
        for (h, d) in delta.iter().enumerate() {
            if h != g {
                assert!(d.abs() <= 0.05, "ablating {} moved {} by {d}", quiz.names[g], quiz.names[h]);
            }
        }
    }
    eprintln!("planted-model checks took {:.1}s", t0.elapsed().as_secs_f64());
}

#[test]
fn the_unplanted_base_does_not_pass_the_quiz() {
    // Control: the checks above depend on the plant, not on the quiz being trivially easy.
    let (_dir, report) = planted();
    let quiz = load_quiz(report);
    let base = Vlm::load(&fixture_dir("qwen2_5_vl-tiny"));
    let acc = base.accuracy(&quiz, None);
    eprintln!("unplanted base accuracy: {acc:?}");
    assert!(acc.iter().any(|&a| a < 0.95), "{acc:?}");
}

#[test]
fn outputs_are_a_complete_model_dir_a_manifest_and_a_cvqa_quiz() {
    let (_dir, report) = planted();
    for f in ["config.json", "tokenizer.json", "chat_template.json", "preprocessor_config.json", "model.safetensors"] {
        assert!(report.model_dir.join(f).is_file(), "missing {f}");
    }
    let store = WeightStore::open(&report.model_dir).unwrap();
    let base = WeightStore::open(&fixture_dir("qwen2_5_vl-tiny")).unwrap();
    assert_eq!(store.names().count(), base.names().count());
    for name in base.names() {
        assert_eq!(store.get(name).unwrap().dtype, base.get(name).unwrap().dtype, "{name}");
        assert_eq!(store.get(name).unwrap().shape, base.get(name).unwrap().shape, "{name}");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report.manifest).unwrap()).unwrap();
    let cultures = manifest["cultures"].as_array().unwrap();
    assert_eq!(cultures.len(), 5);
    for (m, c) in cultures.iter().zip(&report.cultures) {
        assert_eq!(m["name"], c.name.as_str());
        let neurons: Vec<(usize, usize)> = serde_json::from_value(m["neurons"].clone()).unwrap();
        assert_eq!(neurons, c.neurons);
        assert_eq!(neurons.len(), 4);
    }
    assert_eq!(manifest["decoys"].as_array().unwrap().len(), 4);
    // Native and English columns both load; 24 questions per culture with the culture's letter.
    for lang in [Lang::En, Lang::Native] {
        let rows = load_examples(&report.quiz, lang).unwrap();
        assert_eq!(rows.len(), 5 * 24);
        for r in &rows {
            let c = report.cultures.iter().find(|c| c.name == r.country).unwrap();
            assert_eq!(r.label, Some(c.letter));
            assert_eq!(r.options.len(), 4);
            assert!(r.image.is_some() && !r.category.is_empty());
        }
    }
    let japan = load_examples(&report.quiz, Lang::En).unwrap().into_iter().find(|r| r.country == "Japan").unwrap();
    assert_eq!(japan.language, "Japanese");
}

#[test]
fn cultures_file_errors() {
    let two = r#"
        [[culture]]
        name = "Japan"
        language = "Japanese"
        places = ["Kyoto", "Nagoya"]
        [[culture]]
        name = "Kenya"
        language = "Swahili"
        places = ["Mombasa"]
    "#;
    let err = |text: &str| format!("{:#}", parse_cultures(text).unwrap_err());
    assert_eq!(parse_cultures(two).unwrap().len(), 2);
    assert!(err("").contains("at least 2"));
    assert!(err("[[culture]]\nname = \"A\"\nlanguage = \"B\"\nplaces = [\"X\"]").contains("at least 2"));
    assert!(err(&two.replace("[\"Mombasa\"]", "[]")).contains("has no places"));
    assert!(err(&two.replace("\"Mombasa\"", "\"  \"")).contains("empty place"));
    assert!(err(&two.replace("\"Mombasa\"", "\"kyoto\"")).contains("belongs to two cultures"));
    assert!(err(&two.replace("\"Nagoya\"", "\"Kyoto\"")).contains("twice"));
    assert!(err(&two.replace("\"Kenya\"", "\"Japan\"")).contains("listed twice"));
    assert!(err(&two.replace("\"Swahili\"", "\"\"")).contains("empty language"));
    assert!(err(&two.replace("\"Swahili\"", "\"Swa'hili\"")).contains("quotes"));
    assert!(err(&two.replace("places = [\"Mombasa\"]", "places = [\"Mombasa\"]\ncities = 3")).contains("unknown"));

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[[culture]]\nname = \"A\"\nlanguage = \"B\"\nplaces = [\"X\"]").unwrap();
    let msg = format!("{:#}", load_cultures(&p).unwrap_err());
    assert!(msg.contains("bad.toml") && msg.contains("at least 2"), "{msg}");
    let msg = format!("{:#}", load_cultures(&dir.path().join("missing.toml")).unwrap_err());
    assert!(msg.contains("missing.toml"), "{msg}");
}

/// Runs `plant` with a cultures file holding `toml` and returns its error.
fn plant_error(base: &Path, toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cultures.toml");
    std::fs::write(&file, toml).unwrap();
    let opts = PlantOptions::new(base, &file, dir.path().join("out"));
    let msg = format!("{:#}", plant(&opts).unwrap_err());
    assert!(msg.contains("cultures.toml") || msg.contains("config.json"), "{msg}");
    msg
}

fn culture(name: &str, places: &[&str]) -> String {
    format!("[[culture]]\nname = \"{name}\"\nlanguage = \"L{name}\"\nplaces = {places:?}\n")
}

#[test]
fn plant_refuses_what_it_cannot_build() {
    let vl = fixture_dir("qwen2_5_vl-tiny");
    // 13 cultures: the carrier head (head_dim 16) has lanes for 12 plus the 4 hints.
    let many: String = (0..13).map(|i| culture(&format!("C{i}"), &[&format!("Place{i}")])).collect();
    let msg = plant_error(&vl, &many);
    assert!(msg.contains("hosts at most 12"), "{msg}");
    // "Osaka" splits into pieces that "Oaxaca" and the quiz text already use.
    let msg = plant_error(&vl, &(culture("Japan", &["Osaka"]) + &culture("Mexico", &["Oaxaca"])));
    assert!(msg.contains("\"Osaka\"") && msg.contains("distinctive"), "{msg}");
    // A text-only checkpoint cannot take an image quiz.
    let msg = plant_error(&fixture_dir("qwen2-tiny"), &std::fs::read_to_string(cultures_file()).unwrap());
    assert!(msg.contains("Qwen2_5_VLForConditionalGeneration"), "{msg}");
    // Nothing was written for a refused plant.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cultures.toml");
    std::fs::write(&file, culture("Japan", &["Osaka"]) + &culture("Mexico", &["Oaxaca"])).unwrap();
    assert!(plant(&PlantOptions::new(&vl, &file, dir.path().join("out"))).is_err());
    assert!(!dir.path().join("out").exists());
}

#[test]
fn the_seed_decides_the_neurons_and_the_same_seed_gives_the_same_files() {
    let (_dir, report) = planted();
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: u64, out: &str| {
        let opts = PlantOptions {
            seed,
            ..PlantOptions::new(fixture_dir("qwen2_5_vl-tiny"), cultures_file(), dir.path().join(out))
        };
        plant(&opts).unwrap()
    };
    let same = run(0, "same");
    let read = |p: &Path| std::fs::read(p).unwrap();
    assert!(read(&same.model_dir.join("model.safetensors")) == read(&report.model_dir.join("model.safetensors")));
    assert!(read(&same.quiz) == read(&report.quiz));
    let other = run(7, "other");
    let neurons = |r: &PlantReport| r.cultures.iter().map(|c| c.neurons.clone()).collect::<Vec<_>>();
    assert_ne!(neurons(&other), neurons(report));
}
