/// One multiple-choice VQA row, whatever file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct McExample {
    /// The row's ID column (unique within a dataset).
    pub id: String,
    /// From CVQA's Subset tuple "('Japanese', 'Japan')": (language, country).
    pub language: String,
    pub country: String,
    /// In the language chosen at load time (`--lang en` → Translated Question / Options).
    pub question: String,
    pub options: Vec<String>,
    /// Index of the correct option, 0..options.len(); None where the label is hidden
    /// (leaderboard test splits).
    pub label: Option<usize>,
    /// Encoded image bytes (PNG/JPEG/…), decoded only when the example is run.
    pub image: Option<Vec<u8>>,
    pub category: String,
}
