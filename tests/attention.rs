//! The attention kernels against their CPU reference: packed sequences with GQA, windows over
//! a longer cache, and the CPU-adapter kernel past llvmpipe's loop limit.
mod common;

use common::{assert_close, gpu, randn, rng};
use culturelens::gpu::Recorder;
use culturelens::ops::attention::{self, attention_ref, AttentionShape};

/// Packed stream of three prompts of odd lengths, causal within each: ranges never cross prompts.
fn packed_ranges(lens: &[usize]) -> Vec<u32> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for &l in lens {
        for i in 0..l {
            ranges.extend([start as u32, (start + i + 1) as u32]);
        }
        start += l;
    }
    ranges
}

#[test]
fn attention_packed_gqa_matches_reference() {
    let g = gpu();
    let mut r = rng(9);
    for (lens, heads, kv_heads, hd) in
        [(vec![5usize, 70, 3], 6usize, 2usize, 24usize), (vec![131], 4, 1, 16), (vec![1, 2], 2, 2, 100)]
    {
        let tokens: usize = lens.iter().sum();
        let max_keys = *lens.iter().max().unwrap();
        let s = attention::AttentionShape { tokens, heads, kv_heads, head_dim: hd, max_keys };
        let q = randn(&mut r, tokens * heads * hd, 2.0);
        let k = randn(&mut r, tokens * kv_heads * hd, 2.0);
        let v = randn(&mut r, tokens * kv_heads * hd, 1.0);
        let ranges = packed_ranges(&lens);
        let bufs: Vec<_> = [&q, &k, &v].iter().map(|d| g.storage_from("t", d).unwrap()).collect();
        let rb = g.storage_from("ranges", &ranges).unwrap();
        let out = g.storage_buffer("out", (q.len() * 4) as u64).unwrap();
        let scale = 1.0 / (hd as f32).sqrt();
        for kernel in
            [attention::AttentionKernel::Workgroup, attention::AttentionKernel::Block, attention::AttentionKernel::Lane]
        {
            let mut rec = Recorder::new(&g);
            attention::attention_with(&mut rec, kernel, &bufs[0], &bufs[1], &bufs[2], &rb, &out, s, scale);
            rec.finish().unwrap();
            let got: Vec<f32> = g.read(&out, 0, q.len()).unwrap();
            let want = attention::attention_ref(&q, &k, &v, &ranges, s, scale);
            assert_close(&format!("attention {kernel:?}"), &got, &want, 1e-4, 1e-5);
        }
    }
}

/// Ranges that are neither causal nor nested (vision windows, full attention) over a KV cache
/// longer than the batch (decode after a prefill), for every kernel.
#[test]
fn attention_windows_over_a_longer_cache_match_reference() {
    let g = gpu();
    let mut r = rng(19);
    let (tokens, rows, heads, kv_heads, hd) = (37usize, 90usize, 4usize, 2usize, 40usize);
    let q = randn(&mut r, tokens * heads * hd, 2.0);
    let k = randn(&mut r, rows * kv_heads * hd, 2.0);
    let v = randn(&mut r, rows * kv_heads * hd, 1.0);
    let ranges: Vec<u32> = (0..tokens)
        .flat_map(|t| {
            let start = (t * 7) % 50;
            [start as u32, (start + 1 + (t * 13) % 40) as u32]
        })
        .collect();
    let s = attention::AttentionShape { tokens, heads, kv_heads, head_dim: hd, max_keys: attention::max_keys(&ranges) };
    let bufs: Vec<_> = [&q, &k, &v].iter().map(|d| g.storage_from("t", d).unwrap()).collect();
    let rb = g.storage_from("ranges", &ranges).unwrap();
    let out = g.storage_buffer("out", (q.len() * 4) as u64).unwrap();
    let want = attention::attention_ref(&q, &k, &v, &ranges, s, 0.3);
    for kernel in
        [attention::AttentionKernel::Workgroup, attention::AttentionKernel::Block, attention::AttentionKernel::Lane]
    {
        let mut rec = Recorder::new(&g);
        attention::attention_with(&mut rec, kernel, &bufs[0], &bufs[1], &bufs[2], &rb, &out, s, 0.3);
        rec.finish().unwrap();
        let got: Vec<f32> = g.read(&out, 0, q.len()).unwrap();
        assert_close(&format!("windowed attention {kernel:?}"), &got, &want, 1e-4, 1e-5);
    }
}

/// The CPU-adapter attention walks keys in blocks, one dispatch each: llvmpipe (Mesa 22) ends
/// an invocation's loops after 65535 iterations in all, which at head_dim 128 a single pass over
/// 64 keys already reaches (found here: it made 7B-shaped attention on lavapipe wrong).
#[test]
fn lane_attention_stays_under_the_llvmpipe_loop_limit() {
    use culturelens::gpu::Recorder;
    use culturelens::ops::attention::{attention_with, AttentionKernel};
    let g = gpu();
    let mut r = common::rng(5);
    for (keys, hd) in [(100usize, 128usize), (1, 128), (301, 256), (8200, 16), (70_001, 16)] {
        let (heads, kvh) = (2usize, 1usize);
        let q = common::randn(&mut r, heads * hd, 1.0);
        let k = common::randn(&mut r, keys * kvh * hd, 1.0);
        let v = common::randn(&mut r, keys * kvh * hd, 1.0);
        let ranges = vec![0u32, keys as u32];
        let s = AttentionShape { tokens: 1, heads, kv_heads: kvh, head_dim: hd, max_keys: keys };
        let [qb, kb, vb] = [&q, &k, &v].map(|x| g.storage_from("t", x).unwrap());
        let rb = g.storage_from("ranges", &ranges).unwrap();
        let ob = g.storage_buffer("out", (heads * hd * 4) as u64).unwrap();
        let mut rec = Recorder::new(&g);
        attention_with(&mut rec, AttentionKernel::Lane, &qb, &kb, &vb, &rb, &ob, s, 0.088);
        rec.finish().unwrap();
        let got: Vec<f32> = g.read(&ob, 0, heads * hd).unwrap();
        let want = attention_ref(&q, &k, &v, &ranges, s, 0.088);
        common::assert_close(&format!("lane attention, {keys} keys, head_dim {hd}"), &got, &want, 1e-4, 1e-6);
    }
}
