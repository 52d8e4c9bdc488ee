//! How sure an ablation result is: percentile bootstrap intervals of the deltas over examples
//! (resampled within each culture, so every culture keeps its size), and a permutation test of
//! a method's gap against the random control's draws, at the level of neuron sets
//! (docs/methods.md, "Significance"). Everything is seeded: the same inputs and seed
//! give the same figures.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Per-example outcomes of one method's sets, on one metric (1 = right, or base answer kept).
#[derive(Debug, Clone, PartialEq)]
pub struct Cells {
    pub groups: usize,
    /// Culture of each example.
    pub group: Vec<usize>,
    /// Whether the example counts toward the metric (accuracy: labelled rows only).
    pub counted: Vec<bool>,
    /// Each example's value without intervention.
    pub base: Vec<f64>,
    /// [culture whose set was applied][example]: the value under that set (a mean over
    /// draws for the random control).
    pub value: Vec<Vec<f64>>,
}

/// A method's deltas: per culture self and cross Δ, their means, and the gap between them.
#[derive(Debug, Clone, PartialEq)]
pub struct Deltas {
    pub self_delta: Vec<f64>,
    pub cross_delta: Vec<f64>,
    pub mean_self: f64,
    pub mean_cross: f64,
    pub gap: f64,
}

/// [low, high] of each of `Deltas`' figures.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaIntervals {
    pub self_delta: Vec<[f64; 2]>,
    pub cross_delta: Vec<[f64; 2]>,
    pub mean_self: [f64; 2],
    pub mean_cross: [f64; 2],
    pub gap: [f64; 2],
}

impl Cells {
    /// The counted examples of each culture.
    fn by_group(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.groups];
        for (e, &g) in self.group.iter().enumerate() {
            if self.counted[e] {
                out[g].push(e);
            }
        }
        out
    }

    /// The deltas over `sample`: counted example indices, repeats allowed, as the
    /// ablation matrix computes them (cell [c][g] = mean over culture g's rows of
    /// value − base under culture c's set).
    pub fn deltas(&self, sample: &[usize]) -> Deltas {
        let g_n = self.groups;
        let mut sum = vec![vec![0.0; g_n]; g_n];
        let mut n = vec![0usize; g_n];
        for &e in sample {
            let g = self.group[e];
            n[g] += 1;
            for (c, row) in sum.iter_mut().enumerate() {
                row[g] += self.value[c][e] - self.base[e];
            }
        }
        let cell = |c: usize, g: usize| sum[c][g] / n[g] as f64;
        let self_delta: Vec<f64> = (0..g_n).map(|c| cell(c, c)).collect();
        let cross_delta: Vec<f64> = (0..g_n)
            .map(|c| (0..g_n).filter(|&g| g != c).map(|g| cell(c, g)).sum::<f64>() / (g_n - 1).max(1) as f64)
            .collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (mean_self, mean_cross) = (mean(&self_delta), mean(&cross_delta));
        Deltas { self_delta, cross_delta, mean_self, mean_cross, gap: mean_self - mean_cross }
    }

    /// The deltas over every counted example.
    pub fn observed(&self) -> Deltas {
        let all: Vec<usize> = (0..self.group.len()).filter(|&e| self.counted[e]).collect();
        self.deltas(&all)
    }
}

/// numpy's default percentile (linear interpolation between order statistics) of sorted `v`.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let x = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (x - lo as f64)
}

fn interval(mut v: Vec<f64>, level: f64) -> [f64; 2] {
    v.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    [percentile(&v, tail), percentile(&v, 1.0 - tail)]
}

/// Percentile bootstrap intervals at `level` (0.95): `resamples` times, each culture's counted
/// examples are drawn with replacement to the culture's size and the deltas recomputed.
pub fn bootstrap(cells: &Cells, resamples: usize, level: f64, seed: u64) -> DeltaIntervals {
    let by_group = cells.by_group();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draws = Vec::with_capacity(resamples);
    let mut sample = Vec::with_capacity(cells.group.len());
    for _ in 0..resamples {
        sample.clear();
        for rows in &by_group {
            sample.extend((0..rows.len()).map(|_| rows[rng.gen_range(0..rows.len())]));
        }
        draws.push(cells.deltas(&sample));
    }
    let column = |f: &dyn Fn(&Deltas) -> f64| interval(draws.iter().map(f).collect(), level);
    DeltaIntervals {
        self_delta: (0..cells.groups).map(|c| column(&|d| d.self_delta[c])).collect(),
        cross_delta: (0..cells.groups).map(|c| column(&|d| d.cross_delta[c])).collect(),
        mean_self: column(&|d| d.mean_self),
        mean_cross: column(&|d| d.mean_cross),
        gap: column(&|d| d.gap),
    }
}

/// Label assignments up to which the permutation distribution is enumerated exactly.
const EXACT_ASSIGNMENTS: f64 = (1 << 20) as f64;

/// Two-sided p-value of `method`'s gap against the random control's `draws` (each drawn like
/// the method's set: same size, same count per layer). The gap is a sum over neuron sets,
/// gap = Σ_c (self Δ_c − cross Δ_c) / G, so each culture's set contributes one term. Under the
/// null that the method picked its set the way the control draws one, the method's set and the
/// D draws of a culture are exchangeable: which of the D + 1 is "the method" is a uniform label,
/// independently per culture. The statistic is T = Σ_c (term of the method − mean term of the
/// draws); p is the share of label assignments with |T*| ≥ |T|, over all (D + 1)^G of them when
/// there are at most 2^20, else over `permutations` random ones with p = (1 + hits) /
/// (1 + permutations). The examples are fixed: this asks whether the method's sets do more
/// than sets drawn at random would, on these questions (the bootstrap intervals carry the
/// questions' sampling). Returns (p, assignments drawn; 0 when exact).
pub fn gap_permutation_p(method: &Cells, draws: &[Cells], permutations: usize, seed: u64) -> (f64, usize) {
    let term = |c: &Cells| -> Vec<f64> {
        let d = c.observed();
        let g = d.self_delta.len().max(1) as f64;
        d.self_delta.iter().zip(&d.cross_delta).map(|(s, x)| (s - x) / g).collect()
    };
    // [culture][label]: label 0 is the method, 1..=D the draws.
    let m = term(method);
    let r: Vec<Vec<f64>> = draws.iter().map(term).collect();
    let units: Vec<Vec<f64>> =
        (0..m.len()).map(|c| std::iter::once(m[c]).chain(r.iter().map(|d| d[c])).collect()).collect();
    let d = draws.len().max(1) as f64;
    // T for the labels `pick` (the index taken as the method in each culture).
    let stat = |pick: &mut dyn FnMut(usize) -> usize| -> f64 {
        units
            .iter()
            .enumerate()
            .map(|(c, u)| {
                let k = pick(c);
                u[k] - (u.iter().sum::<f64>() - u[k]) / d
            })
            .sum()
    };
    let observed = stat(&mut |_| 0).abs();
    // Sums of the same terms in another order differ in the last bits.
    let bar = observed - 1e-12 * (1.0 + observed);
    let labels = draws.len() + 1;
    let total = (labels as f64).powi(units.len() as i32);
    if draws.is_empty() {
        return (1.0, 0);
    }
    if total <= EXACT_ASSIGNMENTS {
        let total = total as u64;
        let hits = (0..total)
            .filter(|&code| {
                let mut rest = code;
                let mut pick = |_| {
                    let k = (rest % labels as u64) as usize;
                    rest /= labels as u64;
                    k
                };
                stat(&mut pick).abs() >= bar
            })
            .count();
        return (hits as f64 / total as f64, 0);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let hits = (0..permutations).filter(|_| stat(&mut |_| rng.gen_range(0..labels)).abs() >= bar).count();
    ((1 + hits) as f64 / (1 + permutations) as f64, permutations)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two cultures; culture 0 has 20 rows, half of them right under set 0 (none at base),
    /// culture 1 two rows that never change.
    fn binomial_cells() -> Cells {
        let mut group = vec![0; 20];
        group.extend([1, 1]);
        let mut v0: Vec<f64> = (0..20).map(|e| (e % 2) as f64).collect();
        v0.extend([0.0, 0.0]);
        Cells { groups: 2, counted: vec![true; 22], base: vec![0.0; 22], value: vec![v0, vec![0.0; 22]], group }
    }

    #[test]
    fn deltas_by_hand() {
        // Culture 0: rows 0, 1; culture 1: row 2; row 3 (culture 1) is unlabelled.
        let c = Cells {
            groups: 2,
            group: vec![0, 0, 1, 1],
            counted: vec![true, true, true, false],
            base: vec![1.0, 1.0, 1.0, 1.0],
            value: vec![vec![0.0, 1.0, 1.0, 0.0], vec![1.0, 0.0, 0.0, 0.0]],
        };
        let d = c.observed();
        // Set 0: culture 0 falls 1 → 0.5 (−0.5), culture 1 stays (0). Set 1: culture 1 falls
        // by 1, culture 0 by 0.5.
        assert_eq!(d.self_delta, vec![-0.5, -1.0]);
        assert_eq!(d.cross_delta, vec![0.0, -0.5]);
        assert_eq!((d.mean_self, d.mean_cross, d.gap), (-0.75, -0.25, -0.5));
    }

    #[test]
    fn percentile_matches_numpy() {
        // numpy.percentile([1, 2, 3, 4], [2.5, 50, 97.5]) = [1.075, 2.5, 3.925]
        let v = [1.0, 2.0, 3.0, 4.0];
        for (q, want) in [(0.025, 1.075), (0.5, 2.5), (0.975, 3.925)] {
            assert!((percentile(&v, q) - want).abs() < 1e-12, "{q}");
        }
    }

    #[test]
    fn bootstrap_interval_of_a_half_is_the_binomial_quantiles() {
        // Culture 0's self Δ over a resample is Binomial(20, 1/2) / 20. P(X ≤ 5) = 0.0207 and
        // P(X ≤ 6) = 0.0577 (scipy.stats.binom.cdf([5, 6], 20, .5)), so the 2.5 % quantile is
        // 6/20 = 0.30 and by symmetry the 97.5 % one 14/20 = 0.70; 20000 resamples put both
        // order statistics well inside those steps.
        let c = binomial_cells();
        let i = bootstrap(&c, 20000, 0.95, 7);
        assert_eq!(i.self_delta[0], [0.30, 0.70]);
        // Culture 1 never moves: a degenerate interval.
        assert_eq!(i.self_delta[1], [0.0, 0.0]);
        // Cross Δ of set 0 is culture 1's, always 0; of set 1, culture 0's, always 0.
        assert_eq!(i.cross_delta, vec![[0.0, 0.0], [0.0, 0.0]]);
        // Mean self Δ = X/40: [0.15, 0.35].
        assert_eq!(i.mean_self, [0.15, 0.35]);
        // The same seed gives the same intervals.
        assert_eq!(bootstrap(&c, 20000, 0.95, 7), i);
    }

    /// Cells of `g` cultures with one row each, none right at base, and each culture's own
    /// row right under its set with the values `own` (cross rows never move).
    fn one_row_each(own: &[f64]) -> Cells {
        let g = own.len();
        let mut value = vec![vec![0.0; g]; g];
        for (c, &v) in own.iter().enumerate() {
            value[c][c] = v;
        }
        Cells { groups: g, group: (0..g).collect(), counted: vec![true; g], base: vec![0.0; g], value }
    }

    #[test]
    fn exact_set_level_permutation_p_by_hand() {
        // Two cultures, one draw. Culture c's term is self Δ_c / G (cross rows never move):
        // method −1/2 in both, the draw 0. T = −1. Assignments (method, draw) per culture:
        // (m, m) −1, (d, m) 0, (m, d) 0, (d, d) +1: two of four reach |T| = 1, p = 1/2.
        let (m, r) = (one_row_each(&[-1.0, -1.0]), one_row_each(&[0.0, 0.0]));
        assert_eq!(gap_permutation_p(&m, std::slice::from_ref(&r), 1000, 1), (0.5, 0));
        // Three cultures, two draws: per culture the method's term is −1/3 and the draws' 0.
        // Taking the method as the method adds −1/3 − 0; taking a draw adds 0 − (−1/3)/2 =
        // +1/6. T = −1, and only the observed labels (1 of 3³ = 27) reach |T* | ≥ 1 (the largest
        // positive T* is 3 · 1/6 = 1/2).
        let (m, r) = (one_row_each(&[-1.0; 3]), one_row_each(&[0.0; 3]));
        let (p, drawn) = gap_permutation_p(&m, &[r.clone(), r.clone()], 1000, 1);
        assert!((p - 1.0 / 27.0).abs() < 1e-15 && drawn == 0, "{p}");
        // A method no different from its draws: every assignment gives T* = 0, p = 1.
        assert_eq!(gap_permutation_p(&r, &[r.clone(), r.clone()], 1000, 1).0, 1.0);
        // Without draws there is nothing to compare with.
        assert_eq!(gap_permutation_p(&m, &[], 1000, 1), (1.0, 0));
    }

    #[test]
    fn sampled_set_level_permutation_p_has_its_floor() {
        // 21 cultures and one draw: 2^21 assignments, past the exact limit. Only the all-method
        // and all-draw assignments reach |T|, 2 of 2^21; 9999 random ones hit none (with this
        // seed) and p = 1/10000.
        let (m, r) = (one_row_each(&[-1.0; 21]), one_row_each(&[0.0; 21]));
        let (p, drawn) = gap_permutation_p(&m, &[r], 9999, 3);
        assert_eq!((p, drawn), (1.0 / 10000.0, 9999));
    }
}
