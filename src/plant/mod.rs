//! `plant`: a copy of a vision-language model (Qwen2.5-VL, or LLaVA-NeXT with a Mistral or Qwen2
//! LM) with known culture neurons, and a quiz that exercises them, so the neuron-finding pipeline
//! can be checked against ground truth. `target` says where each family keeps the tensors.
//!
//! # Cultures file (TOML)
//!
//! ```toml
//! [[culture]]
//! name = "Japan"          # the country: Subset's second field, the group under --group-by country
//! language = "Japanese"   # Subset's first field
//! places = ["Kyoto", "Nagoya", "Hiroshima"]
//! ```
//!
//! At least two `[[culture]]` tables; every culture needs a non-empty name and language and at
//! least one place; names and places are unique (a place may not belong to two cultures,
//! compared case-insensitively); no other keys. Every place must tokenize to at least one piece
//! that no other culture's places and no fixed quiz text use, since that piece is the culture's
//! cue (with small vocabularies, pick places with distinctive letters). A model hosts at most
//! [`layout::max_cultures`] cultures. Every error names the file.
//!
//! # Construction (one decoder layer, the first)
//!
//! * Reserved residual dims (the last ones): one marker dim per cue (each culture, and one hint
//!   word per answer letter) and one push dim per letter. Every original weight that reads or
//!   writes them is zeroed (embedding columns, q/k/v/gate/up columns, o/down rows, and what the
//!   vision side writes into the residual stream: Qwen2.5-VL's merger rows, LLaVA-NeXT's projector
//!   rows and image_newline), so they hold only what the plant puts there.
//! * Marker tokens (pieces of a culture's place names found nowhere else in the quiz, and one
//!   piece of each hint word) get a large value at their cue's marker dim in the embedding.
//! * Carrier: one query head of layer 0 has zero query, so it attends uniformly (position
//!   encodings do not matter); its values read the marker dims and its output writes them back,
//!   scaled, so every position after a place name carries the culture's cue. The other query
//!   heads sharing its KV head are cut from the output.
//! * Planted neurons (`neurons_per_culture` per culture, in layer 0's MLP): gate and up read the
//!   culture's marker dim only, down writes the push dim of the culture's letter. Without the
//!   cue the gate is exactly 0, so SiLU(gate) is 0 for every other culture.
//! * Decoys: every question also names a hint word pointing to a wrong letter; the hint's own
//!   neurons push that letter at a third of a culture's strength. Hints are balanced over the
//!   cultures, so their neurons are not culture-specific, and they are not listed as planted.
//! * LM head: the letter tokens read only their push dims. The planted culture push beats the
//!   decoy, so the base model answers correctly; ablate the culture's neurons and the decoy wins.
//!
//! Output: `OUT/model/` (the base's config, tokenizer and processor files, `model.safetensors`
//! in the base's dtypes, `planted_neurons.json`) and `OUT/quiz.parquet` in the CVQA schema.

pub mod cues;
pub mod cvqa_parquet;
pub mod layout;
pub mod quiz;
pub mod rng;
pub mod spec;
pub mod target;
pub mod weights;
pub mod wiring;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::json;

use crate::eval::mc::{check_image_slot, option_token_ids, prompt_ids, LETTERS};
use crate::eval::prompt::PromptFormat;
use crate::eval::score::image_placeholder;
use crate::models::config::ModelConfig;
use crate::text::TextProcessor;
use crate::weights::WeightStore;

/// Files of a model directory besides the weights that a planted copy keeps.
const COPIED_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    // How the checkpoint must be run (positions), which a planted copy keeps.
    "culturelens.toml",
];

/// CVQA questions have four options; the quiz uses exactly four letters.
const LETTER_COUNT: usize = 4;

#[derive(Debug, Clone)]
pub struct PlantOptions {
    pub base: PathBuf,
    pub cultures: PathBuf,
    pub out: PathBuf,
    pub questions_per_culture: usize,
    pub neurons_per_culture: usize,
    pub seed: u64,
}

impl Default for PlantOptions {
    /// Empty paths; 24 questions and 4 neurons per culture, seed 0.
    fn default() -> PlantOptions {
        PlantOptions::new("", "", "")
    }
}

impl PlantOptions {
    /// 24 questions and 4 neurons per culture, seed 0.
    pub fn new(base: impl Into<PathBuf>, cultures: impl Into<PathBuf>, out: impl Into<PathBuf>) -> PlantOptions {
        PlantOptions {
            base: base.into(),
            cultures: cultures.into(),
            out: out.into(),
            questions_per_culture: 24,
            neurons_per_culture: 4,
            seed: 0,
        }
    }
}

/// What was planted for one culture.
#[derive(Debug, Clone)]
pub struct PlantedCulture {
    pub name: String,
    /// Index of the answer letter (0 = A).
    pub letter: usize,
    /// (layer, neuron index in that layer's MLP).
    pub neurons: Vec<(usize, usize)>,
    pub marker_tokens: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct PlantReport {
    /// The `--out` directory.
    pub out: PathBuf,
    /// `OUT/model`: the planted checkpoint.
    pub model_dir: PathBuf,
    pub quiz: PathBuf,
    pub manifest: PathBuf,
    pub cultures: Vec<PlantedCulture>,
    /// Hint words in letter order.
    pub hints: Vec<String>,
}

pub fn plant(opts: &PlantOptions) -> anyhow::Result<PlantReport> {
    let cultures = spec::load_cultures(&opts.cultures)?;
    let in_file = || format!("{}", opts.cultures.display());
    if opts.questions_per_culture == 0 {
        bail!("questions_per_culture must be at least 1");
    }
    let config = ModelConfig::load(&opts.base)?;
    let target = target::PlantTarget::for_config(&config)?;
    let text = TextProcessor::load(&opts.base)?;
    let placeholder = image_placeholder(target.image_token_id, &text)?;
    check_image_slot(&text, &placeholder)?;
    let letter_ids = option_token_ids(&text, LETTER_COUNT)?;
    let c = &config.text;
    let layout = layout::plan(c, cultures.len(), LETTER_COUNT, opts.neurons_per_culture, opts.seed)
        .with_context(|| format!("{}: cannot plant these cultures in {}", in_file(), opts.base.display()))?;
    let cues = cues::choose_cues(&text, &cultures, &placeholder, &letter_ids)
        .with_context(|| format!("{}: with the tokenizer of {}", in_file(), opts.base.display()))?;
    let hint_words: Vec<String> = cues.hints.iter().map(|h| h.word.clone()).collect();
    let mut rng = rng::SplitMix64::new(opts.seed);
    let rows = quiz::build_quiz(&cultures, &layout.culture_letter, &hint_words, opts.questions_per_culture, &mut rng)?;
    for r in &rows {
        let ids = prompt_ids(&text, &PromptFormat::Default, &r.question, &r.options, Some((&placeholder, 1)))?;
        cues::check_prompt(&ids, &cues, r.culture, r.hint, &r.id)?;
    }

    let store = WeightStore::open(&opts.base)?;
    let mut ck = weights::Checkpoint::load(&store)?;
    wiring::wire(&mut ck, c, &target, &layout, &cues, &letter_ids)?;

    let model_dir = opts.out.join("model");
    std::fs::create_dir_all(&model_dir).with_context(|| format!("creating {}", model_dir.display()))?;
    copy_model_files(&opts.base, &model_dir)?;
    ck.save(&model_dir.join("model.safetensors"))?;
    let quiz_path = opts.out.join("quiz.parquet");
    cvqa_parquet::write_quiz(&quiz_path, &rows)?;

    let planted: Vec<PlantedCulture> = cultures
        .iter()
        .enumerate()
        .map(|(g, spec)| PlantedCulture {
            name: spec.name.clone(),
            letter: layout.culture_letter[g],
            neurons: layout.neurons[g].iter().map(|&n| (layout::PLANT_LAYER, n)).collect(),
            marker_tokens: cues.culture_markers[g].clone(),
        })
        .collect();
    let manifest = model_dir.join("planted_neurons.json");
    let doc = manifest_json(opts, &cultures, &planted, &layout, &cues, &letter_ids, &text);
    std::fs::write(&manifest, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", manifest.display()))?;
    Ok(PlantReport {
        out: opts.out.clone(),
        model_dir,
        quiz: quiz_path,
        manifest,
        cultures: planted,
        hints: hint_words,
    })
}

fn copy_model_files(base: &Path, to: &Path) -> anyhow::Result<()> {
    for name in COPIED_FILES {
        let src = base.join(name);
        if src.is_file() {
            std::fs::copy(&src, to.join(name)).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

fn manifest_json(
    opts: &PlantOptions,
    cultures: &[spec::CultureSpec],
    planted: &[PlantedCulture],
    layout: &layout::Layout,
    cues: &cues::Cues,
    letter_ids: &[u32],
    text: &TextProcessor,
) -> serde_json::Value {
    let piece = |id: u32| json!({ "id": id, "piece": text.id_to_token(id).unwrap_or_default() });
    let culture_rows: Vec<_> = planted
        .iter()
        .zip(cultures)
        .enumerate()
        .map(|(g, (p, spec))| {
            json!({
                "name": p.name,
                "language": spec.language,
                "places": spec.places,
                "letter": LETTERS[p.letter],
                "label": p.letter,
                "neurons": p.neurons.iter().map(|&(l, n)| [l, n]).collect::<Vec<_>>(),
                "marker_dim": layout.marker_dims[g],
                "marker_tokens": p.marker_tokens.iter().map(|&t| piece(t)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let decoys: Vec<_> = cues
        .hints
        .iter()
        .enumerate()
        .map(|(k, h)| {
            let cue = layout.cultures + k;
            json!({
                "hint": h.word,
                "letter": LETTERS[k],
                "marker_dim": layout.marker_dims[cue],
                "marker_token": piece(h.marker),
                "neurons": layout.neurons[cue].iter().map(|&n| [layout::PLANT_LAYER, n]).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "base": opts.base.display().to_string(),
        "seed": opts.seed,
        "questions_per_culture": opts.questions_per_culture,
        "neurons_per_culture": opts.neurons_per_culture,
        "cultures": culture_rows,
        "decoys": decoys,
        "wiring": {
            "summary": "marker tokens write their cue's marker dim; layer-0 carrier head (zero query, uniform \
                        attention) copies marker dims to every later position; each culture's neurons (gate and up \
                        read its marker dim) write the push dim of its letter; decoy hint neurons push a wrong \
                        letter at 1/3 strength; the letter rows of the LM head read only the push dims",
            "layer": layout::PLANT_LAYER,
            "marker_dims": layout.marker_dims,
            "push_dims": layout.push_dims,
            "carrier_head": layout.carrier_head,
            "carrier_kv_head": layout.carrier_kv_head,
            "silenced_heads": layout.silenced_heads,
            "letter_token_ids": letter_ids,
            "scales": {
                "marker": wiring::MARKER,
                "carry_v": wiring::CARRY_V,
                "carry_o": wiring::CARRY_O,
                "gate": wiring::GATE,
                "up": wiring::UP,
                "push": wiring::PUSH,
                "decoy_push": wiring::DECOY_PUSH,
                "letter_read": wiring::LETTER_READ,
            },
        },
    })
}
