//! The normative neuron methods of docs/methods.md, in one file, each with a worked-example test.
//! A neuron is a flat index n = layer · I + j into [L, I].

/// Per-group statistics of every neuron: P_g (count of a > 0), S_g (Σa), Q_g (Σa²), N_g.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    pub groups: usize,
    pub layers: usize,
    pub width: usize,
    /// [groups, layers · width] each.
    pub count_pos: Vec<f64>,
    pub sum: Vec<f64>,
    pub sum_sq: Vec<f64>,
    /// N_g: counted positions per group.
    pub positions: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Contrastive activation margin: μ_g − max_{g'≠g} μ_g', top-k among positive scores.
    Cas,
    /// Language activation probability entropy (Tang et al. 2024), same-k variant: each
    /// culture's k lowest-entropy neurons among those whose p_g exceeds τ.
    Lape,
    /// Tang et al.'s original selection: the lowest-entropy `top_rate` of all neurons, shared,
    /// each assigned to every culture whose p_g exceeds τ; at most k per culture.
    LapeTang,
    /// Language activation probability: p_g, top-k.
    Lap,
    /// Mean activation difference: μ_g − mean_{g'≠g} μ_g', top-k.
    Mad,
    /// The control: per culture, neurons drawn at random with the same count per layer as the
    /// culture's CAS set (neurons::random_control), several seeded draws.
    Random,
}

impl Method {
    /// What `--method all` compares: every method at one k per culture, and the random control.
    pub const ALL: [Method; 5] = [Method::Cas, Method::Lape, Method::Lap, Method::Mad, Method::Random];
    /// Every method there is, `all` plus LAPE as Tang et al. select it.
    pub const EVERY: [Method; 6] =
        [Method::Cas, Method::Lape, Method::LapeTang, Method::Lap, Method::Mad, Method::Random];

    pub fn name(self) -> &'static str {
        match self {
            Method::Cas => "cas",
            Method::Lape => "lape",
            Method::LapeTang => "lape-tang",
            Method::Lap => "lap",
            Method::Mad => "mad",
            Method::Random => "random",
        }
    }
}

impl GroupStats {
    pub fn neurons(&self) -> usize {
        self.layers * self.width
    }

    fn per_group(&self, v: &[f64], g: usize) -> Vec<f64> {
        let n = self.neurons();
        let np = self.positions[g].max(1) as f64;
        v[g * n..(g + 1) * n].iter().map(|x| x / np).collect()
    }

    /// p_g = P_g / N_g for every neuron.
    pub fn prob(&self, g: usize) -> Vec<f64> {
        self.per_group(&self.count_pos, g)
    }

    /// μ_g = S_g / N_g for every neuron.
    pub fn mean(&self, g: usize) -> Vec<f64> {
        self.per_group(&self.sum, g)
    }
}

/// LAP: p_g.
pub fn lap_scores(s: &GroupStats, g: usize) -> Vec<f64> {
    s.prob(g)
}

/// MAD: μ_g − mean over the other groups of μ_g'.
pub fn mad_scores(s: &GroupStats, g: usize) -> Vec<f64> {
    contrast(s, g, |others| others.iter().sum::<f64>() / others.len() as f64)
}

/// CAS: μ_g − max over the other groups of μ_g' (the margin over the strongest other culture).
pub fn cas_scores(s: &GroupStats, g: usize) -> Vec<f64> {
    contrast(s, g, |others| others.iter().cloned().fold(f64::NEG_INFINITY, f64::max))
}

fn contrast(s: &GroupStats, g: usize, reduce: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let means: Vec<Vec<f64>> = (0..s.groups).map(|h| s.mean(h)).collect();
    (0..s.neurons())
        .map(|n| {
            let others: Vec<f64> = (0..s.groups).filter(|&h| h != g).map(|h| means[h][n]).collect();
            if others.is_empty() {
                means[g][n]
            } else {
                means[g][n] - reduce(&others)
            }
        })
        .collect()
}

/// The k highest scores, descending, ties to the lower neuron index; with `positive_only`,
/// scores ≤ 0 are never taken (so fewer than k may come back).
pub fn top_k(scores: &[f64], k: usize, positive_only: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).filter(|&n| !positive_only || scores[n] > 0.0).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// k = round(fraction · neurons), at least 1; halves round to even, as Python's round does.
pub fn k_from_fraction(neurons: usize, fraction: f64) -> usize {
    let x = neurons as f64 * fraction;
    let r = x.round();
    let r = if (x - x.trunc() - 0.5).abs() < 1e-12 && r % 2.0 != 0.0 { r - 1.0 } else { r };
    (r as usize).max(1)
}

/// torch's `kthvalue(round(len · q))` of `values` (1-based k-th smallest, Python's rounding),
/// as Tang et al.'s identify.py takes its thresholds.
pub fn kth_value(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let k = k_from_fraction(v.len(), q).min(v.len());
    v.get(k.saturating_sub(1)).copied().unwrap_or(f64::NAN)
}

/// What LAPE computes before any per-culture cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Lape {
    /// kthvalue(round(0.95 · n)) of every p_g(l, j) (identify.py's filter and activation bar).
    pub tau: f64,
    /// Entropy of the normalised activation probabilities per neuron (NaN where no p_g > τ).
    pub entropy: Vec<f64>,
    /// Kept neurons (lowest entropy, top_rate of all), ascending entropy, ties to lower index.
    pub kept: Vec<usize>,
    /// Per group: the kept neurons with p_g > τ, ascending entropy (sets may overlap).
    pub assigned: Vec<Vec<usize>>,
}

/// LAPE (docs/methods.md), step by step as identify.py: τ = kthvalue of all p_g at 95 %;
/// neurons with no p_g > τ are dropped; the lowest-entropy `top_rate` of all L·I neurons are
/// kept; each goes to every group with p_g > τ.
pub fn lape(s: &GroupStats, top_rate: f64) -> Lape {
    let n = s.neurons();
    let probs: Vec<Vec<f64>> = (0..s.groups).map(|g| s.prob(g)).collect();
    let all: Vec<f64> = probs.iter().flatten().copied().collect();
    let tau = kth_value(&all, 0.95);
    let entropy: Vec<f64> = (0..n)
        .map(|j| {
            if !probs.iter().any(|p| p[j] > tau) {
                return f64::NAN;
            }
            let total: f64 = probs.iter().map(|p| p[j]).sum();
            -probs.iter().map(|p| p[j] / total).filter(|&q| q > 0.0).map(|q| q * q.ln()).sum::<f64>()
        })
        .collect();
    let mut candidates: Vec<usize> = (0..n).filter(|&j| !entropy[j].is_nan()).collect();
    candidates.sort_by(|&a, &b| entropy[a].total_cmp(&entropy[b]).then(a.cmp(&b)));
    candidates.truncate(k_from_fraction(n, top_rate));
    let assigned = (0..s.groups).map(|g| candidates.iter().copied().filter(|&j| probs[g][j] > tau).collect()).collect();
    Lape { tau, entropy, kept: candidates, assigned }
}

/// Each group's neuron set for `method` with one k for all methods (for the random control:
/// the CAS sets whose per-layer counts its draws copy). LAPE's same-k variant fills
/// each culture's set to k: its assigned neurons by ascending entropy, then the next-lowest-
/// entropy neurons whose p_g exceeds τ; Tang's original keeps at most k of its assignment.
pub fn select(s: &GroupStats, method: Method, k: usize, lape_top_rate: f64) -> Vec<Vec<usize>> {
    match method {
        Method::Lape => {
            let l = lape(s, lape_top_rate);
            let mut order: Vec<usize> = (0..s.neurons()).filter(|&j| !l.entropy[j].is_nan()).collect();
            order.sort_by(|&a, &b| l.entropy[a].total_cmp(&l.entropy[b]).then(a.cmp(&b)));
            (0..s.groups)
                .map(|g| {
                    let p = s.prob(g);
                    order.iter().copied().filter(|&j| p[j] > l.tau).take(k).collect()
                })
                .collect()
        }
        Method::LapeTang => lape(s, lape_top_rate)
            .assigned
            .into_iter()
            .map(|mut v| {
                v.truncate(k);
                v
            })
            .collect(),
        _ => (0..s.groups)
            .map(|g| match method {
                Method::Cas | Method::Random => top_k(&cas_scores(s, g), k, true),
                Method::Lap => top_k(&lap_scores(s, g), k, false),
                Method::Mad => top_k(&mad_scores(s, g), k, false),
                Method::Lape | Method::LapeTang => unreachable!("handled above"),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 cultures, 1 layer of 4 neurons, 10 positions each.
    ///   neuron:        0     1     2     3
    ///   μ (g0)        0.9   0.1   0.5   0.0
    ///   μ (g1)        0.2   0.1   0.6   0.3
    ///   μ (g2)        0.1   0.4   0.5   0.3
    ///   p (g0)        0.9   0.1   0.5   0.0
    ///   p (g1)        0.1   0.2   0.5   0.3
    ///   p (g2)        0.0   0.6   0.5   0.3
    fn example() -> GroupStats {
        let mu = [[0.9, 0.1, 0.5, 0.0], [0.2, 0.1, 0.6, 0.3], [0.1, 0.4, 0.5, 0.3]];
        let p = [[0.9, 0.1, 0.5, 0.0], [0.1, 0.2, 0.5, 0.3], [0.0, 0.6, 0.5, 0.3]];
        GroupStats {
            groups: 3,
            layers: 1,
            width: 4,
            count_pos: p.iter().flatten().map(|x| x * 10.0).collect(),
            sum: mu.iter().flatten().map(|x| x * 10.0).collect(),
            sum_sq: vec![0.0; 12],
            positions: vec![10, 10, 10],
        }
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn cas_is_the_margin_over_the_strongest_other_culture() {
        let s = example();
        // g0: 0.9-0.2, 0.1-0.4, 0.5-0.6, 0.0-0.3
        close(&cas_scores(&s, 0), &[0.7, -0.3, -0.1, -0.3]);
        // g2: 0.1-0.9, 0.4-0.1, 0.5-0.6, 0.3-0.3
        close(&cas_scores(&s, 2), &[-0.8, 0.3, -0.1, 0.0]);
        // g1: 0.2-0.9, 0.1-0.4, 0.6-0.5, 0.3-0.3: neuron 3's margin is exactly 0.
        close(&cas_scores(&s, 1), &[-0.7, -0.3, 0.1, 0.0]);
        // Only positive margins are selected, so with k = 3 each culture gets a single neuron.
        assert_eq!(select(&s, Method::Cas, 3, 0.01), vec![vec![0], vec![2], vec![1]]);
    }

    #[test]
    fn mad_is_the_difference_to_the_mean_of_the_others() {
        let s = example();
        // g0: 0.9-0.15, 0.1-0.25, 0.5-0.55, 0.0-0.3
        close(&mad_scores(&s, 0), &[0.75, -0.15, -0.05, -0.3]);
        // g1: 0.2-0.5, 0.1-0.25, 0.6-0.5, 0.3-0.15; top 2 = neurons 3 (0.15), 2 (0.1)
        close(&mad_scores(&s, 1), &[-0.3, -0.15, 0.1, 0.15]);
        assert_eq!(select(&s, Method::Mad, 2, 0.01)[1], vec![3, 2]);
    }

    #[test]
    fn lap_is_activation_probability_with_ties_to_the_lower_index() {
        let s = example();
        close(&lap_scores(&s, 1), &[0.1, 0.2, 0.5, 0.3]);
        assert_eq!(select(&s, Method::Lap, 2, 0.01), vec![vec![0, 2], vec![2, 3], vec![1, 2]]);
        assert_eq!(top_k(&[0.1, 0.5, 0.5, 0.5], 2, false), vec![1, 2], "ties go to the lower index");
    }

    #[test]
    fn lape_threshold_entropy_and_assignment() {
        let s = example();
        // All 12 p values sorted: 0, .0, .1, .1, .2, .3, .3, .5, .5, .5, .6, .9
        // kthvalue(round(12 * 0.95) = round(11.4) = 11) = 0.6.
        let l = lape(&s, 0.5);
        assert!((l.tau - 0.6).abs() < 1e-12);
        // Only neuron 0 has a p above τ (0.9, culture 0): p̂ = (0.9, 0.1, 0)/1.0.
        let h0 = -(0.9f64 * 0.9f64.ln() + 0.1 * 0.1f64.ln());
        assert!((l.entropy[0] - h0).abs() < 1e-12);
        assert!(l.entropy[1..].iter().all(|h| h.is_nan()));
        // top_rate 0.5 of 4 neurons = 2, but only one survives the threshold.
        assert_eq!(l.kept, vec![0]);
        assert_eq!(l.assigned, vec![vec![0], vec![], vec![]]);
    }

    #[test]
    fn k_rounds_like_python_and_is_at_least_one() {
        assert_eq!(k_from_fraction(1000, 0.03), 30);
        assert_eq!(k_from_fraction(50, 0.05), 2); // 2.5 → 2 (half to even)
        assert_eq!(k_from_fraction(70, 0.05), 4); // 3.5 → 4
        assert_eq!(k_from_fraction(10, 0.001), 1);
        assert_eq!(kth_value(&[4.0, 1.0, 3.0, 2.0], 0.5), 2.0);
    }
    /// LAPE as Tang et al.'s identify.py runs it (RUCAIBox/Language-Specific-Neurons), step by
    /// step on counts out of 20 positions for 3 cultures x 2 layers x 10 neurons:
    /// activation_probs = over_zero / n; τ = flattened_probs.kthvalue(round(60 · 0.95) = 57)
    /// = 0.9 (the 57th smallest of the 60 p); a neuron whose every p ≤ τ gets entropy +inf;
    /// top_rate 0.1 keeps round(20 · 0.1) = 2 lowest-entropy neurons; each goes to every
    /// culture whose p > activation_bar (the same kthvalue). The three p above τ:
    ///   neuron (1,4): counts (1, 19, 1) → p̂ = (1, 19, 1)/21, H = 0.380506
    ///   neuron (1,8): counts (20, 3, 2) → H = 0.635005
    ///   neuron (0,0): counts (2, 4, 20) → H = 0.687092
    /// so identify.py keeps (1,4) and (1,8): culture 0 gets (1,8), culture 1 (1,4), culture 2
    /// nothing. The same-k variant (k = 2) fills culture 2 with (0,0), the next-lowest entropy
    /// whose p_2 exceeds τ. (Values checked with a plain-Python transcription of identify.py.)
    #[test]
    fn lape_follows_identify_py_and_the_same_k_variant_fills_to_k() {
        let counts: [[[u64; 10]; 2]; 3] = [
            [[2, 16, 5, 3, 0, 12, 7, 1, 4, 6], [3, 2, 18, 9, 1, 0, 5, 8, 20, 4]],
            [[4, 1, 5, 17, 2, 11, 8, 0, 4, 6], [2, 3, 1, 9, 19, 0, 6, 7, 3, 5]],
            [[20, 2, 5, 3, 1, 10, 9, 2, 4, 7], [2, 1, 2, 8, 1, 16, 4, 9, 2, 6]],
        ];
        let s = GroupStats {
            groups: 3,
            layers: 2,
            width: 10,
            count_pos: counts.iter().flatten().flatten().map(|&c| c as f64).collect(),
            sum: vec![0.0; 60],
            sum_sq: vec![0.0; 60],
            positions: vec![20; 3],
        };
        let l = lape(&s, 0.1);
        assert!((l.tau - 0.9).abs() < 1e-12, "τ = {}", l.tau);
        let finite: Vec<(usize, f64)> = l.entropy.iter().copied().enumerate().filter(|(_, h)| !h.is_nan()).collect();
        let want = [(0, 0.687092), (14, 0.380506), (18, 0.635005)];
        assert_eq!(finite.len(), 3);
        for ((j, h), (wj, wh)) in finite.iter().zip(want) {
            assert_eq!(*j, wj);
            assert!((h - wh).abs() < 1e-6, "H of neuron {j}: {h}");
        }
        assert_eq!(l.kept, vec![14, 18]);
        assert_eq!(select(&s, Method::LapeTang, 2, 0.1), vec![vec![18], vec![14], vec![]]);
        assert_eq!(select(&s, Method::Lape, 2, 0.1), vec![vec![18], vec![14], vec![0]]);
    }
}
