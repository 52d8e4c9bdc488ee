//! The quiz that goes with a planted model: per culture, questions naming one of its places,
//! each with a hint word that points to a wrong letter, a generated picture and the culture's
//! letter as the answer.

use std::io::Cursor;

use anyhow::Context;

use super::rng::SplitMix64;
use super::spec::CultureSpec;

/// The same four options in every question: the answer is carried by the place, not the options.
pub const OPTIONS: [&str; 4] = ["a market", "a festival", "a landmark", "a meal"];

const CATEGORIES: [&str; 4] = ["Traditions", "Places", "Food", "Daily life"];

/// Question text; `place` and `hint` are the only parts that vary.
pub fn question_text(place: &str, hint: &str) -> String {
    format!("In {place}, which option matches this picture? (hint: {hint})")
}

/// One quiz row (the CVQA columns, before encoding).
#[derive(Debug, Clone)]
pub struct QuizRow {
    pub id: String,
    pub language: String,
    pub country: String,
    pub question: String,
    pub options: Vec<String>,
    pub label: usize,
    pub category: String,
    pub image_png: Vec<u8>,
    pub image_name: String,
    /// Index of the culture and of the hint (= the hint's letter).
    pub culture: usize,
    pub hint: usize,
}

/// `per_culture` questions for each culture. Culture g's answer is `letters[g]`; its hints
/// cycle over the other letters so each decoy appears equally often in every culture where
/// it may appear.
pub fn build_quiz(
    cultures: &[CultureSpec],
    letters: &[usize],
    hint_words: &[String],
    per_culture: usize,
    rng: &mut SplitMix64,
) -> anyhow::Result<Vec<QuizRow>> {
    let mut rows = Vec::with_capacity(cultures.len() * per_culture);
    for (g, c) in cultures.iter().enumerate() {
        let wrong: Vec<usize> = (0..hint_words.len()).filter(|&k| k != letters[g]).collect();
        for q in 0..per_culture {
            let place = &c.places[q % c.places.len()];
            let hint = wrong[(q + q / c.places.len()) % wrong.len()];
            let question = question_text(place, &hint_words[hint]);
            let id = format!("plant_{}_{q:03}", c.name.replace(char::is_whitespace, "_"));
            let image_png = picture(rng).with_context(|| format!("drawing the picture of {id}"))?;
            rows.push(QuizRow {
                image_name: format!("{id}.png"),
                id,
                language: c.language.clone(),
                country: c.name.clone(),
                question,
                options: OPTIONS.iter().map(|s| s.to_string()).collect(),
                label: letters[g],
                category: CATEGORIES[q % CATEGORIES.len()].to_string(),
                image_png,
                culture: g,
                hint,
            });
        }
    }
    Ok(rows)
}

/// A 56 or 84 px square: a random background with a random inner square (PNG bytes).
fn picture(rng: &mut SplitMix64) -> anyhow::Result<Vec<u8>> {
    let size = if rng.below(2) == 0 { 56 } else { 84 };
    let mut colour = || image::Rgb([rng.below(256) as u8, rng.below(256) as u8, rng.below(256) as u8]);
    let (bg, fg) = (colour(), colour());
    let img = image::RgbImage::from_fn(size, size, |x, y| {
        let inner = (size / 4..3 * size / 4).contains(&x) && (size / 4..3 * size / 4).contains(&y);
        if inner {
            fg
        } else {
            bg
        }
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)?;
    Ok(out)
}
