use crate::gpu::{Binding, Gpu, GpuError, Recorder};

use super::shaders;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ApplyParams {
    width: u32,
    layer: u32,
    collect: u32,
    seg_first: u32,
    zero: u32,
    layers: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FoldParams {
    width: u32,
    layer: u32,
    layers: u32,
    groups: u32,
    seg_first: u32,
    seg_count: u32,
    zero: u32,
    group_first: u32,
}

/// Token group id meaning "not counted in the statistics".
pub const EXCLUDED: u32 = u32::MAX;
/// u32 words per (group, layer, neuron) accumulator: count, sum, sum_comp, sum_sq, sum_sq_comp.
pub const ACC_WORDS: usize = 5;

/// One accumulator's Σa and Σa² as read back: each Kahan pair's sum minus its compensation.
pub fn acc_sums(acc: &[u32]) -> (f64, f64) {
    let f = |w: u32| f32::from_bits(w) as f64;
    (f(acc[1]) - f(acc[2]), f(acc[3]) - f(acc[4]))
}
/// Longest segment: enough work per invocation to hide a load, short enough that a 4096-token
/// batch spreads over 64 workgroup rows.
pub const SEGMENT_TOKENS: usize = 64;
/// Bound on the partial-sum scratch; larger batches take several dispatch pairs.
const PARTIALS_BYTES: usize = 64 << 20;

/// Cuts a token stream into [start, end, group, map] pieces of at most SEGMENT_TOKENS tokens,
/// each inside one run of equal group ids and intervention maps (`token_map`; None: map 0
/// everywhere), so each piece's statistics belong to one group and one map applies to it.
pub fn cut_segments(token_group: &[u32], token_map: Option<&[u32]>) -> Vec<[u32; 4]> {
    let map = |t: usize| token_map.map_or(0, |m| m[t]);
    let mut out = Vec::new();
    let mut start = 0;
    while start < token_group.len() {
        let (g, m) = (token_group[start], map(start));
        let run = (start..token_group.len().min(start + SEGMENT_TOKENS))
            .take_while(|&t| token_group[t] == g && map(t) == m)
            .count();
        out.push([start as u32, (start + run) as u32, g, m]);
        start += run;
    }
    out
}

/// One batch's segments on the GPU, with scratch for their partial sums when statistics are on.
pub struct TokenSegments {
    pub host: Vec<[u32; 4]>,
    buffer: wgpu::Buffer,
    partials: Option<wgpu::Buffer>,
    per_dispatch: usize,
}

impl TokenSegments {
    /// `token_map`: the intervention map of each token (None: map 0 for all).
    pub fn new(
        gpu: &Gpu,
        token_group: &[u32],
        token_map: Option<&[u32]>,
        width: usize,
        stats: bool,
    ) -> Result<TokenSegments, GpuError> {
        let limit = PARTIALS_BYTES.min(gpu.limits.max_storage_buffer_binding_size as usize);
        // At most 32768 segments per fold: llvmpipe ends an invocation's loops after 65535
        // iterations in all.
        let per_dispatch = (limit / (width * ACC_WORDS * 4)).clamp(1, 32768);
        TokenSegments::with_segments_per_dispatch(gpu, token_group, token_map, width, stats, per_dispatch)
    }

    /// As `new`, with at most `per_dispatch` segments per dispatch pair (tests force several).
    pub fn with_segments_per_dispatch(
        gpu: &Gpu,
        token_group: &[u32],
        token_map: Option<&[u32]>,
        width: usize,
        stats: bool,
        per_dispatch: usize,
    ) -> Result<TokenSegments, GpuError> {
        let host = cut_segments(token_group, token_map);
        let flat: Vec<u32> = host.iter().flatten().copied().collect();
        let buffer = gpu.storage_from("token segments", &flat)?;
        let per_dispatch = per_dispatch.clamp(1, host.len().max(1));
        let partials = if stats {
            Some(gpu.storage_buffer("swiglu partial sums", (per_dispatch * width * ACC_WORDS * 4) as u64)?)
        } else {
            None
        };
        Ok(TokenSegments { host, buffer, partials, per_dispatch })
    }
}

/// One block of the statistics accumulators: groups [first_group, first_group + groups), as
/// [groups, layers, width, ACC_WORDS] u32. Accumulators of many cultures span several blocks so
/// that none exceeds a storage binding.
pub struct AccBlock {
    pub buffer: wgpu::Buffer,
    pub first_group: usize,
    pub groups: usize,
}

/// Buffers the fused SwiGLU reads besides gate/up.
pub struct SwigluSide<'a> {
    /// The batch's tokens cut by group (see [`TokenSegments`]).
    pub segments: &'a TokenSegments,
    /// [maps, layers, width, 2] f32: scale, shift per neuron (each segment names its map).
    pub intervention: &'a wgpu::Buffer,
    /// The accumulators, in blocks of groups; None skips statistics.
    pub acc: Option<&'a [AccBlock]>,
    pub layer: usize,
    pub layers: usize,
}

/// gate ← (scale·silu(gate) + shift) · up, accumulating statistics of silu(gate).
pub fn swiglu(rec: &mut Recorder, gate: &wgpu::Buffer, up: &wgpu::Buffer, side: &SwigluSide<'_>, width: usize) {
    let gpu = rec.gpu().clone();
    let apply = shaders::swiglu_pipeline(&gpu, "swiglu_stats", shaders::SWIGLU_STATS);
    let fold = shaders::swiglu_pipeline(&gpu, "swiglu_stats_fold", shaders::SWIGLU_STATS_FOLD);
    let segs = side.segments;
    let collect = match (side.acc, &segs.partials) {
        (Some(blocks), Some(partials)) => Some((blocks, partials)),
        (None, _) => None,
        (Some(_), None) => panic!("statistics asked of segments built without partial-sum scratch"),
    };
    let col_groups = (width as u32).div_ceil(64);
    for seg_first in (0..segs.host.len()).step_by(segs.per_dispatch) {
        let seg_count = segs.per_dispatch.min(segs.host.len() - seg_first);
        let params = ApplyParams {
            width: width as u32,
            layer: side.layer as u32,
            collect: collect.is_some() as u32,
            seg_first: seg_first as u32,
            zero: 0,
            layers: side.layers as u32,
            _pad: [0; 2],
        };
        let partials = collect.map(|c| c.1).unwrap_or(&gpu.scratch);
        rec.dispatch(
            &apply,
            &params,
            &[
                Binding::Whole(gate),
                Binding::Whole(up),
                Binding::Whole(&segs.buffer),
                Binding::Whole(side.intervention),
                Binding::Whole(partials),
            ],
            [col_groups, seg_count as u32, 1],
        );
        let Some((blocks, partials)) = collect else { continue };
        let present = &segs.host[seg_first..seg_first + seg_count];
        for block in blocks {
            let in_block = |g: u32| (block.first_group..block.first_group + block.groups).contains(&(g as usize));
            if !present.iter().any(|s| in_block(s[2])) {
                continue;
            }
            let params = FoldParams {
                width: width as u32,
                layer: side.layer as u32,
                layers: side.layers as u32,
                groups: block.groups as u32,
                seg_first: seg_first as u32,
                seg_count: seg_count as u32,
                zero: 0,
                group_first: block.first_group as u32,
            };
            rec.dispatch(
                &fold,
                &params,
                &[Binding::Whole(&segs.buffer), Binding::Whole(partials), Binding::Whole(&block.buffer)],
                [col_groups, 1, 1],
            );
        }
    }
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Host-side view of the accumulators, folded to f64.
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronSums {
    pub count_pos: Vec<u64>,
    pub sum: Vec<f64>,
    pub sum_sq: Vec<f64>,
}

impl NeuronSums {
    pub fn from_words(words: &[u32]) -> NeuronSums {
        let n = words.len() / ACC_WORDS;
        let f = |w: u32| f32::from_bits(w) as f64;
        let mut s =
            NeuronSums { count_pos: Vec::with_capacity(n), sum: Vec::with_capacity(n), sum_sq: Vec::with_capacity(n) };
        for c in words.chunks_exact(ACC_WORDS) {
            s.count_pos.push(c[0] as u64);
            s.sum.push(f(c[1]) - f(c[2]));
            s.sum_sq.push(f(c[3]) - f(c[4]));
        }
        s
    }
}

/// CPU reference for one layer: returns h and adds statistics into `sums` ([groups, width]
/// slices). Token t takes the map `scale_shift[token_map[t]]` ([width, 2] each).
pub fn swiglu_ref(
    gate: &[f32],
    up: &[f32],
    token_group: &[u32],
    token_map: &[u32],
    maps: &[&[f32]],
    width: usize,
    sums: &mut NeuronSums,
) -> Vec<f32> {
    let mut h = vec![0f32; gate.len()];
    for (t, &g_id) in token_group.iter().enumerate() {
        let scale_shift = maps[token_map[t] as usize];
        for j in 0..width {
            let i = t * width + j;
            let a = silu(gate[i]);
            h[i] = (scale_shift[2 * j] * a + scale_shift[2 * j + 1]) * up[i];
            if g_id != EXCLUDED {
                let s = g_id as usize * width + j;
                sums.count_pos[s] += (a > 0.0) as u64;
                sums.sum[s] += a as f64;
                sums.sum_sq[s] += (a as f64) * (a as f64);
            }
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_group_runs_and_the_length_cap() {
        let x = EXCLUDED;
        let mut groups = vec![0, 0, x, x, 1, 1, 1, 0];
        groups.extend(std::iter::repeat_n(2, SEGMENT_TOKENS + 3));
        let n = SEGMENT_TOKENS as u32;
        assert_eq!(
            cut_segments(&groups, None),
            vec![[0, 2, 0, 0], [2, 4, x, 0], [4, 7, 1, 0], [7, 8, 0, 0], [8, 8 + n, 2, 0], [8 + n, 11 + n, 2, 0]]
        );
        assert!(cut_segments(&[], None).is_empty());
    }

    #[test]
    fn segments_also_cut_where_the_intervention_map_changes() {
        let x = EXCLUDED;
        let groups = [x, x, x, 0, 0, 0];
        let maps = [0, 2, 2, 2, 2, 1];
        assert_eq!(cut_segments(&groups, Some(&maps)), vec![[0, 1, x, 0], [1, 3, x, 2], [3, 5, 0, 2], [5, 6, 0, 1]]);
    }
}
