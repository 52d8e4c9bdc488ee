//! Evaluation on multiple-choice VQA data: rows, prompting and scoring.

pub mod dataset;
pub mod example;
pub mod grouping;
pub mod mc;
pub mod prompt;
pub mod score;
pub mod significance;

pub use example::McExample;
