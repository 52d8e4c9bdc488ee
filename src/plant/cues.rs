//! Which token ids cue what: each culture's marker tokens (pieces of its place names that
//! occur nowhere else in the quiz) and one hint word per answer letter with a single marker
//! token of its own. The planted circuit reads only these tokens, so they must be exclusive.

use std::collections::BTreeSet;

use anyhow::{bail, Context};

use super::quiz::{question_text, OPTIONS};
use super::spec::CultureSpec;
use crate::eval::mc::prompt_ids;
use crate::eval::prompt::PromptFormat;
use crate::text::TextProcessor;

/// Hint words tried in order; a word is used when one of its tokens is its own.
const HINT_WORDS: &[&str] = &[
    "drum",
    "kite",
    "lantern",
    "crown",
    "yak",
    "fox",
    "jug",
    "quilt",
    "wolf",
    "box",
    "owl",
    "cow",
    "bell",
    "jewel",
    "queen",
    "xylophone",
    "violin",
    "vase",
    "wizard",
    "fish",
    "wheel",
    "wave",
    "zebra",
    "comb",
    "harp",
    "mask",
    "pearl",
    "tiger",
    "cloud",
    "spoon",
    "feather",
    "hammer",
];

/// A hint word and the one token of it that the planted decoy neurons read.
#[derive(Debug, Clone)]
pub struct Hint {
    pub word: String,
    pub marker: u32,
}

#[derive(Debug, Clone)]
pub struct Cues {
    /// Per culture: token ids found in its place names and in no other text of the quiz.
    pub culture_markers: Vec<Vec<u32>>,
    /// One per answer letter, in letter order.
    pub hints: Vec<Hint>,
}

fn tokens(text: &TextProcessor, s: &str) -> anyhow::Result<Vec<u32>> {
    Ok(text.encode(s, false)?)
}

/// Place names appear after a space in the question; the bare form is also excluded from the
/// other cultures so a marker never hides in another spelling.
fn place_tokens(text: &TextProcessor, place: &str) -> anyhow::Result<(Vec<u32>, Vec<u32>)> {
    Ok((tokens(text, &format!(" {place}"))?, tokens(text, place)?))
}

/// Tokens of everything in a quiz prompt except the place and the hint word.
fn fixed_tokens(text: &TextProcessor, placeholder: &str, letter_ids: &[u32]) -> anyhow::Result<BTreeSet<u32>> {
    let options: Vec<String> = OPTIONS.iter().map(|s| s.to_string()).collect();
    let mut fixed: BTreeSet<u32> =
        prompt_ids(text, &PromptFormat::Default, &question_text("", ""), &options, Some((placeholder, 1)))?
            .into_iter()
            .collect();
    fixed.extend(letter_ids);
    Ok(fixed)
}

/// Picks the marker tokens of every culture and one hint word per letter.
pub fn choose_cues(
    text: &TextProcessor,
    cultures: &[CultureSpec],
    placeholder: &str,
    letter_ids: &[u32],
) -> anyhow::Result<Cues> {
    let fixed = fixed_tokens(text, placeholder, letter_ids)?;
    let mut per_place: Vec<Vec<(Vec<u32>, Vec<u32>)>> = Vec::new();
    for c in cultures {
        per_place.push(c.places.iter().map(|p| place_tokens(text, p)).collect::<anyhow::Result<_>>()?);
    }
    let all_place_tokens: BTreeSet<u32> =
        per_place.iter().flatten().flat_map(|(spaced, bare)| spaced.iter().chain(bare)).copied().collect();
    let mut culture_markers = Vec::new();
    for (g, c) in cultures.iter().enumerate() {
        let others: BTreeSet<u32> = per_place
            .iter()
            .enumerate()
            .filter(|&(h, _)| h != g)
            .flat_map(|(_, places)| places.iter().flat_map(|(s, b)| s.iter().chain(b)))
            .copied()
            .collect();
        let mut markers = BTreeSet::new();
        for (place, (spaced, _)) in c.places.iter().zip(&per_place[g]) {
            let own: Vec<u32> = spaced.iter().copied().filter(|t| !fixed.contains(t) && !others.contains(t)).collect();
            if own.is_empty() {
                let pieces: Vec<String> = spaced.iter().map(|&t| text.id_to_token(t).unwrap_or_default()).collect();
                bail!(
                    "culture {:?}: place {place:?} tokenizes as {pieces:?}, and every piece also occurs in another \
                     culture's places or in the quiz text, so nothing in it can cue {:?}; pick a more distinctive place",
                    c.name,
                    c.name
                );
            }
            markers.extend(own);
        }
        culture_markers.push(markers.into_iter().collect());
    }
    let hints = choose_hints(text, &fixed, &all_place_tokens, &culture_markers, letter_ids.len())?;
    Ok(Cues { culture_markers, hints })
}

fn choose_hints(
    text: &TextProcessor,
    fixed: &BTreeSet<u32>,
    place_tokens: &BTreeSet<u32>,
    culture_markers: &[Vec<u32>],
    n: usize,
) -> anyhow::Result<Vec<Hint>> {
    let culture_markers: BTreeSet<u32> = culture_markers.iter().flatten().copied().collect();
    let mut hints: Vec<Hint> = Vec::new();
    let mut used: BTreeSet<u32> = BTreeSet::new();
    for word in HINT_WORDS {
        if hints.len() == n {
            break;
        }
        let toks = tokens(text, &format!(" {word}"))?;
        // A hint may not carry a culture's cue nor an earlier hint's marker.
        if toks.iter().any(|t| culture_markers.contains(t) || hints.iter().any(|h| h.marker == *t)) {
            continue;
        }
        let own = toks.iter().copied().find(|t| {
            toks.iter().filter(|&u| u == t).count() == 1
                && !fixed.contains(t)
                && !place_tokens.contains(t)
                && !used.contains(t)
        });
        if let Some(marker) = own {
            used.extend(&toks);
            hints.push(Hint { word: word.to_string(), marker });
        }
    }
    if hints.len() < n {
        bail!(
            "found only {} of the {n} hint words the quiz needs: the tokenizer splits the others into pieces the \
             place names or the quiz text already use",
            hints.len()
        );
    }
    Ok(hints)
}

/// Checks one rendered quiz prompt: its culture's markers occur, no other culture's do, and
/// exactly one hint marker occurs, the one of `hint`.
pub fn check_prompt(ids: &[u32], cues: &Cues, culture: usize, hint: usize, what: &str) -> anyhow::Result<()> {
    let count = |set: &[u32]| ids.iter().filter(|t| set.contains(t)).count();
    (|| {
        if count(&cues.culture_markers[culture]) == 0 {
            bail!("the prompt holds none of its culture's marker tokens");
        }
        for (h, m) in cues.culture_markers.iter().enumerate() {
            if h != culture && count(m) > 0 {
                bail!("the prompt holds marker tokens of culture #{h}");
            }
        }
        for (k, hnt) in cues.hints.iter().enumerate() {
            let n = count(&[hnt.marker]);
            let want = (k == hint) as usize;
            if n != want {
                bail!("hint {:?}'s marker occurs {n} time(s), expected {want}", hnt.word);
            }
        }
        Ok(())
    })()
    .with_context(|| format!("quiz question {what}"))
}
