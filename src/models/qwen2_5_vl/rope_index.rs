//! Position bookkeeping of Qwen2.5-VL: the LM's 3-D M-RoPE positions (HF get_rope_index) and the
//! vision tower's window order (HF get_window_index).

use super::config::VisionConfig;

/// M-RoPE positions of one sequence, `[t, h, w]` per token (so stride 3), and the rope delta
/// (max position + 1 − length). Text runs count up on all three axes; an image's tokens take
/// (start + 0, start + row, start + col) on its merged grid; text resumes after the image's max.
/// `grids` are the images' (t, h, w) patch grids in prompt order.
pub fn get_rope_index(ids: &[u32], grids: &[[usize; 3]], cfg: &VisionConfig) -> anyhow::Result<(Vec<i64>, i64)> {
    let m = cfg.spatial_merge_size;
    let mut pos: Vec<i64> = Vec::with_capacity(ids.len() * 3);
    let mut next: i64 = 0;
    let mut i = 0;
    let mut images = grids.iter();
    while i < ids.len() {
        if ids[i] != cfg.image_token_id {
            pos.extend([next, next, next]);
            next += 1;
            i += 1;
            continue;
        }
        let Some(&[t, h, w]) = images.next() else {
            anyhow::bail!("the prompt has more image placeholders than images were given");
        };
        let (gh, gw) = (h / m, w / m);
        let n = t * gh * gw;
        if i + n > ids.len() || ids[i..i + n].iter().any(|&x| x != cfg.image_token_id) {
            anyhow::bail!("image {}x{}x{} needs {n} consecutive image tokens at position {i}", t, h, w);
        }
        // Images have no time axis: HF multiplies the frame index by second_per_grid_t = 0.
        for _ in 0..t {
            for r in 0..gh {
                for c in 0..gw {
                    pos.extend([next, next + r as i64, next + c as i64]);
                }
            }
        }
        next += gh.max(gw) as i64;
        i += n;
    }
    if images.next().is_some() {
        anyhow::bail!("more images were given than the prompt has image placeholders");
    }
    let max = pos.iter().copied().max().unwrap_or(-1);
    Ok((pos, max + 1 - ids.len() as i64))
}

/// Window order of one image's merge groups (HF get_window_index): groups of
/// spatial_merge_size² patches are visited window by window (window_size pixels square), each
/// window row-major. Returns the group order and each window's size in patches (empty windows
/// dropped, as HF's unique_consecutive does).
pub fn window_index(grid: [usize; 3], cfg: &VisionConfig) -> (Vec<usize>, Vec<usize>) {
    let [t, h, w] = grid;
    let m = cfg.spatial_merge_size;
    let win = cfg.window_size / m / cfg.patch_size;
    let (gh, gw) = (h / m, w / m);
    let (nwh, nww) = (gh.div_ceil(win), gw.div_ceil(win));
    let mut order = Vec::with_capacity(t * gh * gw);
    let mut sizes = Vec::new();
    for f in 0..t {
        for wy in 0..nwh {
            for wx in 0..nww {
                let before = order.len();
                for y in wy * win..((wy + 1) * win).min(gh) {
                    for x in wx * win..((wx + 1) * win).min(gw) {
                        order.push((f * gh + y) * gw + x);
                    }
                }
                if order.len() > before {
                    sizes.push((order.len() - before) * m * m);
                }
            }
        }
    }
    (order, sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> VisionConfig {
        VisionConfig {
            depth: 1,
            hidden_size: 32,
            intermediate_size: 64,
            num_heads: 2,
            in_chans: 3,
            patch_size: 14,
            temporal_patch_size: 2,
            spatial_merge_size: 2,
            window_size: 112,
            fullatt_block_indexes: vec![],
            out_hidden_size: 64,
            image_token_id: 9,
            vision_start_token_id: 8,
        }
    }

    #[test]
    fn text_then_image_then_text() {
        // 2 text tokens, a 1x4x6 grid (2x3 merged = 6 tokens), 2 text tokens.
        let ids = [1, 8, 9, 9, 9, 9, 9, 9, 2, 3];
        let (pos, delta) = get_rope_index(&ids, &[[1, 4, 6]], &cfg()).unwrap();
        let t: Vec<i64> = pos.chunks(3).map(|p| p[0]).collect();
        let h: Vec<i64> = pos.chunks(3).map(|p| p[1]).collect();
        let w: Vec<i64> = pos.chunks(3).map(|p| p[2]).collect();
        assert_eq!(t, [0, 1, 2, 2, 2, 2, 2, 2, 5, 6]);
        assert_eq!(h, [0, 1, 2, 2, 2, 3, 3, 3, 5, 6]);
        assert_eq!(w, [0, 1, 2, 3, 4, 2, 3, 4, 5, 6]);
        assert_eq!(delta, 7 - 10);
        assert!(get_rope_index(&ids, &[], &cfg()).is_err());
        assert!(get_rope_index(&ids[..5], &[[1, 4, 6]], &cfg()).is_err());
    }

    #[test]
    fn windows_cover_every_group_once() {
        // 12x20 patches = 6x10 merge groups, windows of 4x4 groups: 2 x 3 windows.
        let (order, sizes) = window_index([1, 12, 20], &cfg());
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..60).collect::<Vec<_>>());
        assert_eq!(sizes.iter().sum::<usize>(), 240);
        assert_eq!(sizes, vec![64, 64, 32, 32, 32, 16]);
        assert_eq!(&order[..5], &[0, 1, 2, 3, 10]);
    }
}
