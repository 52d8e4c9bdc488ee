//! What an intervention does to the answers of each culture. With labels: accuracy. Without
//! them (leaderboard test splits hide `Label`): how often the base answer is kept, and how much
//! of its probability (softmax over the option letters) it loses. Both are measured always; the
//! matrix reports accuracy when every culture has labelled rows, else the kept rate.

use crate::eval::mc::pick;
use crate::eval::McExample;
pub use crate::report::Metric;

/// The metric a study reports: accuracy where every culture has at least one labelled row,
/// else the kept rate.
pub fn metric_for_rows(examples: &[(usize, McExample)], groups: usize) -> Metric {
    if labelled_per_group(examples, groups).iter().all(|&n| n > 0) {
        Metric::Accuracy
    } else {
        Metric::Kept
    }
}

/// Rows with a label, per culture.
pub fn labelled_per_group(examples: &[(usize, McExample)], groups: usize) -> Vec<usize> {
    let mut n = vec![0; groups];
    for (g, ex) in examples {
        n[*g] += ex.label.is_some() as usize;
    }
    n
}

/// Each row's answer: the option with the largest letter logit.
pub fn answers(examples: &[(usize, McExample)], logits: &[Vec<f32>]) -> Vec<usize> {
    examples.iter().zip(logits).map(|((_, ex), l)| pick(&l[..ex.options.len().min(l.len())])).collect()
}

/// Rows that count toward `metric`: labelled rows for accuracy, every row for the kept rate.
pub fn counted_rows(examples: &[(usize, McExample)], metric: Metric) -> Vec<bool> {
    examples.iter().map(|(_, ex)| metric == Metric::Kept || ex.label.is_some()).collect()
}

/// Each row's value of `metric` under `logits` (1: right, or the base answer kept; 0 for rows
/// that do not count).
pub fn example_values(
    examples: &[(usize, McExample)],
    base: &[Vec<f32>],
    logits: &[Vec<f32>],
    metric: Metric,
) -> Vec<f64> {
    let now = answers(examples, logits);
    let before = answers(examples, base);
    examples
        .iter()
        .enumerate()
        .map(|(k, (_, ex))| match metric {
            Metric::Accuracy => (ex.label == Some(now[k])) as u8 as f64,
            Metric::Kept => (now[k] == before[k]) as u8 as f64,
        })
        .collect()
}

/// Softmax probability of option `k` over a row's option logits.
pub fn probability(logits: &[f32], k: usize) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    (logits[k] as f64 - max).exp() / sum
}

/// Per culture: accuracy over labelled rows (NaN without any), the share of base answers kept,
/// and the mean drop of the base answer's probability, of `logits` against `base`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub accuracy: Vec<f64>,
    pub kept: Vec<f64>,
    pub prob_drop: Vec<f64>,
    pub answers: Vec<usize>,
}

impl Outcome {
    pub fn of(examples: &[(usize, McExample)], base: &[Vec<f32>], logits: &[Vec<f32>], groups: usize) -> Outcome {
        let base_answers = answers(examples, base);
        let now = answers(examples, logits);
        let (mut right, mut labelled, mut kept, mut drop, mut rows) = (
            vec![0usize; groups],
            vec![0usize; groups],
            vec![0usize; groups],
            vec![0f64; groups],
            vec![0usize; groups],
        );
        for (k, (g, ex)) in examples.iter().enumerate() {
            let n = ex.options.len().min(logits[k].len());
            rows[*g] += 1;
            kept[*g] += (now[k] == base_answers[k]) as usize;
            let b = base_answers[k];
            drop[*g] += probability(&base[k][..n], b) - probability(&logits[k][..n], b);
            if let Some(label) = ex.label {
                labelled[*g] += 1;
                right[*g] += (now[k] == label) as usize;
            }
        }
        let ratio = |a: &[f64], b: &[usize]| -> Vec<f64> { a.iter().zip(b).map(|(x, &n)| x / n as f64).collect() };
        let f = |v: &[usize]| -> Vec<f64> { v.iter().map(|&x| x as f64).collect() };
        Outcome {
            accuracy: ratio(&f(&right), &labelled),
            kept: ratio(&f(&kept), &rows),
            prob_drop: ratio(&drop, &rows),
            answers: now,
        }
    }

    /// The per-culture values of `metric`.
    pub fn metric(&self, metric: Metric) -> &[f64] {
        match metric {
            Metric::Accuracy => &self.accuracy,
            Metric::Kept => &self.kept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: Option<usize>) -> McExample {
        McExample {
            id: String::new(),
            language: String::new(),
            country: String::new(),
            question: String::new(),
            options: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            label,
            image: None,
            category: String::new(),
        }
    }

    #[test]
    fn accuracy_kept_rate_and_probability_drop_by_hand() {
        // Culture 0: two labelled rows; culture 1: one unlabelled row.
        let ex = vec![(0, row(Some(0))), (0, row(Some(2))), (1, row(None))];
        let base = vec![vec![2.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0], vec![0.0, 0.0, 0.0, 3.0]];
        let after = vec![vec![0.0, 0.0, 0.0, 0.0], vec![0.0, 0.0, 1.0, 0.0], vec![0.0, 0.0, 0.0, 3.0]];
        let o = Outcome::of(&ex, &base, &after, 2);
        // Ties go to the earlier option: row 0 still answers A (right), row 1 moves B -> C (right now).
        assert_eq!(o.answers, vec![0, 2, 3]);
        assert_eq!(o.accuracy[0], 1.0);
        assert!(o.accuracy[1].is_nan());
        assert_eq!(o.kept, vec![0.5, 1.0]);
        // p(A) falls from e²/(e²+3) = 0.711235 to 1/4; p(B) from e/(e+3) = 0.475367 to 1/(e+3) = 0.174878.
        let want0 = ((0.711235 - 0.25) + (0.475367 - 0.174878)) / 2.0;
        assert!((o.prob_drop[0] - want0).abs() < 1e-6, "{}", o.prob_drop[0]);
        assert_eq!(o.prob_drop[1], 0.0);
        assert_eq!(metric_for_rows(&ex, 2), Metric::Kept);
        assert_eq!(metric_for_rows(&ex[..2], 1), Metric::Accuracy);
    }
}
