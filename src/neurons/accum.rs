//! Order-independent, exact accumulation of per-chunk statistics.
//!
//! The GPU folds each chunk of examples into f32 Kahan pairs. Adding those partials in f64 would
//! make the total depend on the order the chunks were added, so shards merged after the fact
//! would differ in the last bits from a single run. Each partial is instead rounded once to a
//! fixed grid of 2⁻⁷² and summed as an i128: integer addition is associative, so any split of
//! the chunks (shards, resumed runs) gives bit-identical totals.

use anyhow::Context as _;

use crate::neurons::GroupStats;
use crate::ops::swiglu::{acc_sums, ACC_WORDS};

/// Fixed-point scale: values are stored as round(x · 2^FRAC_BITS).
const FRAC_BITS: i32 = 72;
/// |x| beyond this would leave less than 2⁹ of headroom in an i128 total.
const MAX_ABS: f64 = 3.6e16; // ≈ 2^55

fn to_fixed(x: f64) -> anyhow::Result<i128> {
    if !x.is_finite() || x.abs() > MAX_ABS {
        anyhow::bail!(
            "activation statistic {x} is not finite or exceeds {MAX_ABS:e}; the model's activations overflow"
        );
    }
    Ok((x * 2f64.powi(FRAC_BITS)).round() as i128)
}

fn from_fixed(v: i128) -> f64 {
    v as f64 * 2f64.powi(-FRAC_BITS)
}

/// Statistics of every group × layer × neuron, summed over chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct Accumulated {
    pub groups: usize,
    pub layers: usize,
    pub width: usize,
    /// [groups, layers, width] each.
    pub count_pos: Vec<u64>,
    pub sum: Vec<i128>,
    pub sum_sq: Vec<i128>,
    /// N_g.
    pub positions: Vec<u64>,
    /// Per group: prompt tokens run and image tokens among them, whatever the position rule
    /// (None for statistics written before these were counted).
    pub token_counts: Option<TokenCounts>,
    /// Example weighting (`--weight example`, every question weighs the same): Σ over examples
    /// of P_e / n_e per neuron, fixed point. `sum` and `sum_sq` then hold Σ S_e / n_e and
    /// Σ Q_e / n_e, `positions` the examples counted, and `count_pos` is unused (0).
    pub count_pos_weighted: Option<Vec<i128>>,
}

/// Prompt tokens and image tokens per group.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenCounts {
    pub tokens: Vec<u64>,
    pub image_tokens: Vec<u64>,
}

impl Accumulated {
    pub fn zeros(groups: usize, layers: usize, width: usize) -> Accumulated {
        let n = groups * layers * width;
        Accumulated {
            groups,
            layers,
            width,
            count_pos: vec![0; n],
            sum: vec![0; n],
            sum_sq: vec![0; n],
            positions: vec![0; groups],
            token_counts: Some(TokenCounts { tokens: vec![0; groups], image_tokens: vec![0; groups] }),
            count_pos_weighted: None,
        }
    }

    /// Zeros for example weighting.
    pub fn zeros_weighted(groups: usize, layers: usize, width: usize) -> Accumulated {
        Accumulated { count_pos_weighted: Some(vec![0; groups * layers * width]), ..Self::zeros(groups, layers, width) }
    }

    /// Adds one batch's raw accumulator words where every sequence had its own slot
    /// ([slots, layers, width, ACC_WORDS]): each example's sums divided by its counted positions
    /// `slot_positions[s]`, into the group `slot_group[s]` (examples with none count nowhere).
    pub fn add_example_words(
        &mut self,
        words: &[u32],
        slot_group: &[usize],
        slot_positions: &[u64],
    ) -> anyhow::Result<()> {
        let per = self.layers * self.width;
        anyhow::ensure!(
            words.len() >= slot_group.len() * per * ACC_WORDS && slot_group.len() == slot_positions.len(),
            "per-example statistics of {} slots in {} words",
            slot_group.len(),
            words.len()
        );
        let weighted = self.count_pos_weighted.as_mut().context("statistics are not example-weighted")?;
        for (slot, (&g, &n)) in slot_group.iter().zip(slot_positions).enumerate() {
            if n == 0 {
                continue;
            }
            anyhow::ensure!(g < self.groups, "group {g} of {}", self.groups);
            let n = n as f64;
            for j in 0..per {
                let c = &words[(slot * per + j) * ACC_WORDS..][..ACC_WORDS];
                let (sum, sum_sq) = acc_sums(c);
                let at = g * per + j;
                weighted[at] += to_fixed(c[0] as f64 / n)?;
                self.sum[at] += to_fixed(sum / n)?;
                self.sum_sq[at] += to_fixed(sum_sq / n)?;
            }
            self.positions[g] += 1;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.groups * self.layers * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one chunk's raw accumulator words ([groups, layers, width, ACC_WORDS], as the
    /// statistics kernel leaves them) and the positions it counted.
    pub fn add_words(&mut self, words: &[u32], positions: &[u64]) -> anyhow::Result<()> {
        anyhow::ensure!(
            words.len() == self.len() * ACC_WORDS && positions.len() == self.groups,
            "statistics chunk has {} words and {} groups, expected {} and {}",
            words.len(),
            positions.len(),
            self.len() * ACC_WORDS,
            self.groups
        );
        let f = |w: u32| f32::from_bits(w) as f64;
        for (n, c) in words.chunks_exact(ACC_WORDS).enumerate() {
            self.count_pos[n] += c[0] as u64;
            // hi − compensation, each rounded on its own so the result is independent of order.
            self.sum[n] += to_fixed(f(c[1]))? - to_fixed(f(c[2]))?;
            self.sum_sq[n] += to_fixed(f(c[3]))? - to_fixed(f(c[4]))?;
        }
        add_into(&mut self.positions, positions);
        Ok(())
    }

    /// Adds one chunk's prompt-token and image-token counts per group.
    pub fn add_tokens(&mut self, tokens: &[u64], image_tokens: &[u64]) -> anyhow::Result<()> {
        anyhow::ensure!(
            tokens.len() == self.groups && image_tokens.len() == self.groups,
            "token counts for {} and {} groups, expected {}",
            tokens.len(),
            image_tokens.len(),
            self.groups
        );
        if let Some(c) = &mut self.token_counts {
            add_into(&mut c.tokens, tokens);
            add_into(&mut c.image_tokens, image_tokens);
        }
        Ok(())
    }

    /// Adds another accumulation of the same shape (a shard).
    pub fn merge(&mut self, other: &Accumulated) -> anyhow::Result<()> {
        anyhow::ensure!(
            (self.groups, self.layers, self.width) == (other.groups, other.layers, other.width),
            "cannot merge statistics of shape {}x{}x{} into {}x{}x{}",
            other.groups,
            other.layers,
            other.width,
            self.groups,
            self.layers,
            self.width
        );
        match (&mut self.count_pos_weighted, &other.count_pos_weighted) {
            (Some(a), Some(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            }
            (None, None) => {}
            _ => anyhow::bail!("cannot merge example-weighted statistics with token-weighted ones"),
        }
        for n in 0..self.len() {
            self.count_pos[n] += other.count_pos[n];
            self.sum[n] += other.sum[n];
            self.sum_sq[n] += other.sum_sq[n];
        }
        add_into(&mut self.positions, &other.positions);
        // Counts are known for the merge only when every part knows them.
        self.token_counts = match (self.token_counts.take(), &other.token_counts) {
            (Some(mut a), Some(b)) => {
                add_into(&mut a.tokens, &b.tokens);
                add_into(&mut a.image_tokens, &b.image_tokens);
                Some(a)
            }
            _ => None,
        };
        Ok(())
    }

    pub fn sum_f64(&self) -> Vec<f64> {
        self.sum.iter().map(|&v| from_fixed(v)).collect()
    }

    pub fn sum_sq_f64(&self) -> Vec<f64> {
        self.sum_sq.iter().map(|&v| from_fixed(v)).collect()
    }

    /// The host-side statistics the methods score.
    pub fn group_stats(&self) -> GroupStats {
        GroupStats {
            groups: self.groups,
            layers: self.layers,
            width: self.width,
            count_pos: match &self.count_pos_weighted {
                Some(w) => w.iter().map(|&c| from_fixed(c)).collect(),
                None => self.count_pos.iter().map(|&c| c as f64).collect(),
            },
            sum: self.sum_f64(),
            sum_sq: self.sum_sq_f64(),
            positions: self.positions.clone(),
        }
    }

    /// μ over every group's positions pooled, per neuron [layers · width] (mean ablation's shift).
    pub fn pooled_mean(&self) -> Vec<f64> {
        let n = self.layers * self.width;
        let total: u64 = self.positions.iter().sum();
        let sums = self.sum_f64();
        (0..n).map(|j| (0..self.groups).map(|g| sums[g * n + j]).sum::<f64>() / total.max(1) as f64).collect()
    }
}

fn add_into(total: &mut [u64], part: &[u64]) {
    for (t, p) in total.iter_mut().zip(part) {
        *t += p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(vals: &[(u32, f32, f32)]) -> Vec<u32> {
        vals.iter().flat_map(|&(c, s, q)| [c, s.to_bits(), 0, q.to_bits(), 0]).collect()
    }

    #[test]
    fn any_split_of_chunks_gives_identical_bits() {
        let chunks: Vec<Vec<u32>> = (0..7)
            .map(|k| words(&[(k, 0.1 + k as f32 * 1e-7, 3.3e5), (1, 1e-3 / (k + 1) as f32, 7.0e-9), (2, -2.5, 1e4)]))
            .collect();
        let mut single = Accumulated::zeros(1, 1, 3);
        for c in &chunks {
            single.add_words(c, &[5]).unwrap();
        }
        let mut even = Accumulated::zeros(1, 1, 3);
        let mut odd = Accumulated::zeros(1, 1, 3);
        for (k, c) in chunks.iter().enumerate().rev() {
            if k % 2 == 0 { &mut even } else { &mut odd }.add_words(c, &[5]).unwrap();
        }
        odd.merge(&even).unwrap();
        assert_eq!(odd, single);
        assert_eq!(single.positions, vec![35]);
        assert_eq!(single.count_pos[0], 21);
        let s = single.sum_f64();
        let expect: f64 = (0..7).map(|k| (0.1 + k as f32 * 1e-7) as f64).sum();
        assert!((s[0] - expect).abs() < 1e-15, "{} vs {expect}", s[0]);
    }

    #[test]
    fn compensation_word_is_subtracted() {
        let w = vec![1u32, 1.0f32.to_bits(), 1e-8f32.to_bits(), 2.0f32.to_bits(), 0];
        let mut a = Accumulated::zeros(1, 1, 1);
        a.add_words(&w, &[1]).unwrap();
        assert!((a.sum_f64()[0] - (1.0 - 1e-8f32 as f64)).abs() < 1e-18);
    }

    #[test]
    fn example_weighting_averages_each_example_first() {
        // One neuron, two examples of group 0: 1 position with a = 4 (positive), and 3 positions
        // with a = 2, 0, 0 (one positive). Token weighting: μ = 6/4, p = 2/4. Example weighting:
        // μ = (4/1 + 2/3)/2 = 7/3, p = (1/1 + 1/3)/2 = 2/3.
        let w = [1u32, 4.0f32.to_bits(), 0, 16.0f32.to_bits(), 0, 1, 2.0f32.to_bits(), 0, 4.0f32.to_bits(), 0];
        let mut a = Accumulated::zeros_weighted(1, 1, 1);
        a.add_example_words(&w, &[0, 0], &[1, 3]).unwrap();
        let s = a.group_stats();
        assert_eq!(s.positions, vec![2]);
        assert!((s.mean(0)[0] - 7.0 / 3.0).abs() < 1e-15, "{}", s.mean(0)[0]);
        assert!((s.prob(0)[0] - 2.0 / 3.0).abs() < 1e-15, "{}", s.prob(0)[0]);
        // An example with no counted position counts nowhere; token statistics do not merge in.
        a.add_example_words(&w[..5], &[0], &[0]).unwrap();
        assert_eq!(a.positions, vec![2]);
        assert!(a.merge(&Accumulated::zeros(1, 1, 1)).is_err());
        assert!(Accumulated::zeros(1, 1, 1).add_example_words(&w, &[0, 0], &[1, 3]).is_err());
    }

    #[test]
    fn overflow_and_shape_mismatch_are_errors() {
        let mut a = Accumulated::zeros(1, 1, 1);
        assert!(a.add_words(&[1, f32::INFINITY.to_bits(), 0, 0, 0], &[1]).is_err());
        assert!(a.add_words(&[1, 0, 0, 0], &[1]).is_err());
        assert!(a.merge(&Accumulated::zeros(2, 1, 1)).is_err());
    }
}
