use crate::ops::swiglu::EXCLUDED;

/// Several prompts packed into one token stream, no padding. Per token: its sequence, its
/// position(s) within the sequence and the statistics group it counts toward.
#[derive(Debug, Clone, Default)]
pub struct PackedBatch {
    pub tokens: Vec<u32>,
    /// `pos_stride` entries per token (1 for RoPE; 3 — t, h, w — for M-RoPE).
    pub positions: Vec<i64>,
    pub pos_stride: usize,
    /// Start index of each sequence, plus the total length at the end.
    pub seq_starts: Vec<usize>,
    /// Statistics group per token, or EXCLUDED.
    pub token_group: Vec<u32>,
    /// Per sequence: how many of its earlier tokens already sit in the KV cache, in the rows
    /// just before this batch (0 for a fresh prompt; the prompt so far when decoding).
    pub cached_prefix: Vec<usize>,
    /// Per sequence: the intervention map it runs under (an index into
    /// `ForwardOptions::interventions`); empty means map 0 for every sequence.
    pub sequence_map: Vec<u32>,
}

impl PackedBatch {
    /// Packs text sequences with positions 0..len each; no token is counted in statistics.
    pub fn from_sequences(seqs: &[Vec<u32>]) -> PackedBatch {
        let mut b = PackedBatch { pos_stride: 1, seq_starts: vec![0], ..Default::default() };
        for s in seqs {
            b.tokens.extend_from_slice(s);
            b.positions.extend((0..s.len() as i64).collect::<Vec<_>>());
            b.token_group.extend(std::iter::repeat_n(EXCLUDED, s.len()));
            b.seq_starts.push(b.tokens.len());
            b.cached_prefix.push(0);
        }
        b
    }

    /// One new token of a sequence whose first `cached` tokens are in the cache rows just before.
    pub fn continuation(token: u32, cached: usize) -> PackedBatch {
        PackedBatch {
            tokens: vec![token],
            positions: vec![cached as i64],
            pos_stride: 1,
            seq_starts: vec![0, 1],
            token_group: vec![EXCLUDED],
            cached_prefix: vec![cached],
            sequence_map: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn num_sequences(&self) -> usize {
        self.seq_starts.len() - 1
    }

    pub fn sequence(&self, s: usize) -> std::ops::Range<usize> {
        self.seq_starts[s]..self.seq_starts[s + 1]
    }

    /// Index of each sequence's last token.
    pub fn last_tokens(&self) -> Vec<u32> {
        self.seq_starts[1..].iter().map(|&e| e as u32 - 1).collect()
    }

    /// The M-RoPE form of `continuation`: after the prompt, t, h and w advance together from
    /// the prompt's rope delta (HF: position = cache length + rope_deltas).
    pub fn continuation_mrope(token: u32, cached: usize, rope_delta: i64) -> PackedBatch {
        let p = cached as i64 + rope_delta;
        PackedBatch { positions: vec![p, p, p], pos_stride: 3, ..PackedBatch::continuation(token, cached) }
    }

    /// The intervention map of every token, where sequences name theirs.
    pub fn token_maps(&self) -> Option<Vec<u32>> {
        if self.sequence_map.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(self.len());
        for (s, &m) in self.sequence_map.iter().enumerate() {
            out.extend(std::iter::repeat_n(m, self.sequence(s).len()));
        }
        Some(out)
    }

    /// Counts every token of sequence `s` toward statistics group `group`.
    pub fn set_group(&mut self, s: usize, group: u32) {
        let r = self.sequence(s);
        self.token_group[r].fill(group);
    }

    /// Rejects what the kernels cannot run: no tokens, empty sequences, positions that do not
    /// match the tokens, and a cached prefix outside a single-sequence continuation.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.is_empty() {
            anyhow::bail!("empty batch");
        }
        if self.pos_stride == 0 || self.positions.len() != self.len() * self.pos_stride {
            anyhow::bail!(
                "batch has {} positions for {} tokens x {}",
                self.positions.len(),
                self.len(),
                self.pos_stride
            );
        }
        if self.token_group.len() != self.len()
            || self.cached_prefix.len() != self.num_sequences()
            || !(self.sequence_map.is_empty() || self.sequence_map.len() == self.num_sequences())
        {
            anyhow::bail!("batch bookkeeping does not match its {} tokens", self.len());
        }
        if self.seq_starts.windows(2).any(|w| w[1] <= w[0]) {
            anyhow::bail!("batch holds an empty sequence");
        }
        if self.num_sequences() > 1 && self.cached_prefix.iter().any(|&p| p > 0) {
            anyhow::bail!("only a single sequence can continue from the KV cache");
        }
        Ok(())
    }

    /// Per token [start, end) of the cache rows it attends to: its own sequence, causally,
    /// limited to the last `window` tokens when a sliding window is set. Token i sits in cache
    /// row `cache_row0 + i`.
    pub fn kv_ranges(&self, cache_row0: usize, window: Option<usize>) -> Vec<u32> {
        let mut r = Vec::with_capacity(2 * self.len());
        for s in 0..self.num_sequences() {
            let seq = self.sequence(s);
            for i in seq.clone() {
                let mut start = cache_row0 + seq.start - self.cached_prefix[s];
                if let Some(w) = window {
                    start = start.max((cache_row0 + i + 1).saturating_sub(w));
                }
                r.extend([start as u32, (cache_row0 + i + 1) as u32]);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_stay_inside_each_sequence_and_respect_the_window() {
        let b = PackedBatch::from_sequences(&[vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(b.kv_ranges(0, None), vec![0, 1, 0, 2, 0, 3, 3, 4, 3, 5]);
        assert_eq!(b.kv_ranges(10, None), vec![10, 11, 10, 12, 10, 13, 13, 14, 13, 15]);
        // Window 2: a token sees itself and the one before (HF: kv_idx > q_idx - window).
        assert_eq!(b.kv_ranges(0, Some(2)), vec![0, 1, 0, 2, 1, 3, 3, 4, 3, 5]);
        assert_eq!(b.last_tokens(), vec![2, 4]);
    }

    #[test]
    fn continuation_attends_to_its_cached_prefix() {
        let step = PackedBatch::continuation(7, 5);
        assert_eq!(step.positions, vec![5]);
        assert_eq!(step.kv_ranges(5, None), vec![0, 6]);
        assert_eq!(step.kv_ranges(5, Some(3)), vec![3, 6]);
    }
}
