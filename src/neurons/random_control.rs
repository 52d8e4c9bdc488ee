//! The random control: per culture, neurons drawn uniformly with the same count in every layer
//! as a reference set (the culture's CAS set), so that a drop it causes measures what any set of
//! that size and depth does, not culture knowledge.

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// `draws` random sets per reference set ([draw][set][neuron], flat indices layer · width + j,
/// ascending). Draw d of set g depends only on (seed, d, g), so adding draws or cultures leaves
/// the earlier ones unchanged.
pub fn random_like(
    reference: &[Vec<usize>],
    layers: usize,
    width: usize,
    draws: usize,
    seed: u64,
) -> Vec<Vec<Vec<usize>>> {
    (0..draws)
        .map(|d| {
            reference
                .iter()
                .enumerate()
                .map(|(g, set)| {
                    let mut per_layer = vec![0usize; layers];
                    for &n in set {
                        per_layer[n / width] += 1;
                    }
                    let stream = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((d as u64) << 32 | g as u64);
                    let mut rng = ChaCha8Rng::seed_from_u64(stream);
                    let mut out: Vec<usize> = per_layer
                        .iter()
                        .enumerate()
                        .flat_map(|(l, &k)| {
                            sample(&mut rng, width, k.min(width)).into_iter().map(move |j| l * width + j)
                        })
                        .collect();
                    out.sort_unstable();
                    out
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_per_layer_counts_distinct_neurons_and_replayable() {
        let (layers, width) = (3, 10);
        // Set 0: two neurons in layer 0, one in layer 2; set 1: five in layer 1.
        let reference = vec![vec![0, 5, 27], vec![10, 11, 12, 13, 14]];
        let draws = random_like(&reference, layers, width, 4, 9);
        assert_eq!(draws.len(), 4);
        for d in &draws {
            for (set, r) in d.iter().zip(&reference) {
                let count = |v: &[usize], l: usize| v.iter().filter(|&&n| n / width == l).count();
                for l in 0..layers {
                    assert_eq!(count(set, l), count(r, l), "layer {l}");
                }
                let mut u = set.clone();
                u.dedup();
                assert_eq!(u.len(), set.len(), "a neuron drawn twice: {set:?}");
            }
        }
        assert_ne!(draws[0], draws[1], "two draws came out the same");
        assert_eq!(random_like(&reference, layers, width, 4, 9), draws);
        assert_ne!(random_like(&reference, layers, width, 4, 10), draws);
        // Fewer draws or only the first culture: the same first draws.
        assert_eq!(random_like(&reference, layers, width, 2, 9)[..], draws[..2]);
        assert_eq!(random_like(&reference[..1], layers, width, 1, 9)[0][0], draws[0][0]);
    }
}
