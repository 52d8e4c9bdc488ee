//! Every kernel against its CPU reference on random inputs at awkward sizes.
mod common;

use common::{assert_close, gpu, randn, rng};
use culturelens::gpu::{Recorder, WeightDType, WeightTensor};
use culturelens::ops::matmul_coop::{CoopOps, CoopTile};
use culturelens::ops::{activation, embedding, gather, layernorm, matmul, rmsnorm, rope, swiglu};
use half::{bf16, f16};

/// Rounds `v` to `dtype` and returns (bytes as stored on disk, the values the GPU will see).
fn quantize(v: &[f32], dtype: WeightDType) -> (Vec<u8>, Vec<f32>) {
    match dtype {
        WeightDType::BF16 => {
            let h: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
            (bytemuck::cast_slice(&h).to_vec(), h.iter().map(|x| x.to_f32()).collect())
        }
        WeightDType::F16 => {
            let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
            (bytemuck::cast_slice(&h).to_vec(), h.iter().map(|x| x.to_f32()).collect())
        }
        WeightDType::F32 => (bytemuck::cast_slice(v).to_vec(), v.to_vec()),
    }
}

fn to_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| f16::from_f32(x).to_f32()).collect()
}

fn check_matmul(dtype: WeightDType, m: usize, n: usize, k: usize, split_bytes: Option<u64>, seed: u64) {
    for kernel in [
        matmul::MatmulKernel::Tiled { block: 4 },
        matmul::MatmulKernel::Tiled { block: 8 },
        matmul::MatmulKernel::SplitK { rows_per_group: 4 },
        matmul::MatmulKernel::SplitK { rows_per_group: 1 },
        matmul::MatmulKernel::Lane,
    ] {
        check_matmul_kernel(kernel, dtype, m, n, k, split_bytes, seed);
    }
}

fn check_matmul_kernel(
    kernel: matmul::MatmulKernel,
    dtype: WeightDType,
    m: usize,
    n: usize,
    k: usize,
    split_bytes: Option<u64>,
    seed: u64,
) {
    let base = gpu();
    let g = match split_bytes {
        Some(b) => base.with_max_binding_bytes(b),
        None => base,
    };
    let mut r = rng(seed);
    let x = randn(&mut r, m * k, 1.0);
    let (wbytes, wq) = quantize(&randn(&mut r, n * k, 0.5), dtype);
    let bias = randn(&mut r, n, 0.3);
    let resid = randn(&mut r, m * n, 1.0);
    let w = WeightTensor::upload(&g, "w", dtype, n, k, &wbytes).unwrap();
    if split_bytes.is_some() {
        assert!(w.chunks.len() > 1, "split size must force several chunks");
    }
    let xb = g.storage_from("x", &x).unwrap();
    let bb = g.storage_from("b", &bias).unwrap();
    let yb = g.storage_from("y", &resid).unwrap();
    // Tensor-core kernels multiply f16 operands exactly and accumulate in f32.
    let (x, wq) = match kernel {
        matmul::MatmulKernel::Coop { .. } => (to_f16(&x), to_f16(&wq)),
        _ => (x, wq),
    };
    let mut rec = Recorder::new(&g);
    matmul::matmul_with(
        &mut rec,
        kernel,
        &xb,
        &w,
        Some(&bb),
        &yb,
        m,
        matmul::MatmulOut { row_offset: 0, accumulate: true },
    );
    rec.finish().unwrap();
    let got: Vec<f32> = g.read(&yb, 0, m * n).unwrap();
    let mut want = matmul::matmul_ref(&x, &wq, Some(&bias), m, n, k);
    for (w, r) in want.iter_mut().zip(&resid) {
        *w += r;
    }
    assert_close(&format!("matmul {kernel:?} {dtype:?} {m}x{n}x{k}"), &got, &want, 1e-4, 1e-4);
}

#[test]
fn matmul_all_dtypes_odd_sizes() {
    for (i, dt) in [WeightDType::BF16, WeightDType::F16, WeightDType::F32].into_iter().enumerate() {
        check_matmul(dt, 37, 71, 53, None, 10 + i as u64);
        check_matmul(dt, 1, 129, 67, None, 20 + i as u64);
        check_matmul(dt, 70, 5, 131, None, 30 + i as u64);
    }
}

#[test]
fn matmul_split_weight_matches_unsplit() {
    // 97 rows x 45 cols of bf16 = 90 bytes a row; 1000 bytes forces chunks of 10 rows (even, since
    // an odd column count must start each chunk on a u32 boundary).
    check_matmul(WeightDType::BF16, 19, 97, 45, Some(1000), 40);
    check_matmul(WeightDType::F32, 7, 33, 29, Some(500), 41);
}

fn check_coop_matmul(tile: CoopTile, ops: CoopOps) {
    let kernel = matmul::MatmulKernel::Coop { tile, ops };
    for (i, dt) in [WeightDType::BF16, WeightDType::F16, WeightDType::F32].into_iter().enumerate() {
        let seed = 50 + 10 * i as u64;
        check_matmul_kernel(kernel, dt, 37, 71, 53, None, seed);
        check_matmul_kernel(kernel, dt, 70, 5, 131, None, seed + 1);
        check_matmul_kernel(kernel, dt, 19, 97, 45, Some(1000), seed + 2);
    }
}

/// The fast kernel's staging, double buffering, tiling and epilogue, with its 16x16 matrix
/// operations emulated in scalar WGSL: runs on every adapter, cooperative matrices or not.
#[test]
fn coop_matmul_tiling_matches_reference_emulated() {
    for tile in [
        CoopTile { subgroup: 8, sg_m: 2, sg_n: 1, am: 1, an: 2 },
        CoopTile { subgroup: 8, sg_m: 1, sg_n: 1, am: 2, an: 4 },
    ] {
        check_coop_matmul(tile, CoopOps::Emulated);
    }
}

/// The same on the tensor cores, where the adapter has them (fast mode's kernel as chosen).
#[test]
fn coop_matmul_on_tensor_cores_matches_reference() {
    let g = gpu();
    match &g.fast_support {
        Ok(subgroup) => check_coop_matmul(CoopTile::for_subgroup(*subgroup), CoopOps::Hardware),
        Err(why) => eprintln!(
            "no tensor-core run here ({why}); coop_matmul_tiling_matches_reference_emulated checks the kernel's \
             logic and shaders_validate its SPIR-V"
        ),
    }
}

/// The check a device passes before fast mode is used on it: the emulated kernel passes it, and a
/// tile that does not fit the device is refused with the reason.
#[test]
fn fast_mode_self_check() {
    let g = gpu();
    culturelens::ops::coop_check::self_check(&g, CoopTile::EMULATED, CoopOps::Emulated).unwrap();
    let oversized = CoopTile { subgroup: 8, sg_m: 4, sg_n: 4, am: 4, an: 4 };
    let why = culturelens::ops::coop_check::self_check(&g, oversized, CoopOps::Emulated).unwrap_err();
    assert!(why.contains("workgroup memory"), "{why}");
}

#[test]
fn matmul_without_bias_overwrites_at_row_offset() {
    let g = gpu();
    let mut r = rng(5);
    let (m, n, k) = (9, 23, 17);
    let x = randn(&mut r, m * k, 1.0);
    let (wb, wq) = quantize(&randn(&mut r, n * k, 1.0), WeightDType::F32);
    let w = WeightTensor::upload(&g, "w", WeightDType::F32, n, k, &wb).unwrap();
    let xb = g.storage_from("x", &x).unwrap();
    let yb = g.storage_from("y", &vec![7.0f32; (m + 3) * n]).unwrap();
    for kernel in [
        matmul::MatmulKernel::Tiled { block: 8 },
        matmul::MatmulKernel::SplitK { rows_per_group: 4 },
        matmul::MatmulKernel::Lane,
    ] {
        g.write_padded(&yb, 0, bytemuck::cast_slice(&vec![7.0f32; (m + 3) * n]));
        let mut rec = Recorder::new(&g);
        matmul::matmul_with(
            &mut rec,
            kernel,
            &xb,
            &w,
            None,
            &yb,
            m,
            matmul::MatmulOut { row_offset: 3, accumulate: false },
        );
        rec.finish().unwrap();
        let got: Vec<f32> = g.read(&yb, 0, (m + 3) * n).unwrap();
        assert!(got[..3 * n].iter().all(|&v| v == 7.0), "rows before the offset untouched");
        assert_close("matmul offset", &got[3 * n..], &matmul::matmul_ref(&x, &wq, None, m, n, k), 1e-4, 1e-4);
    }
}

#[test]
fn embedding_gathers_rows_across_chunks() {
    let g = gpu().with_max_binding_bytes(7 * 26);
    let mut r = rng(6);
    let (vocab, hidden) = (61, 13);
    let (tb, tq) = quantize(&randn(&mut r, vocab * hidden, 1.0), WeightDType::BF16);
    let table = WeightTensor::upload(&g, "emb", WeightDType::BF16, vocab, hidden, &tb).unwrap();
    assert!(table.chunks.len() > 5);
    let ids: Vec<u32> = (0..41).map(|i| (i * 37 + 3) % vocab as u32).collect();
    let idb = g.storage_from("ids", &ids).unwrap();
    let out = g.storage_buffer("out", (ids.len() * hidden * 4) as u64).unwrap();
    let mut rec = Recorder::new(&g);
    embedding::embedding(&mut rec, &idb, &table, &out, ids.len());
    rec.finish().unwrap();
    let got: Vec<f32> = g.read(&out, 0, ids.len() * hidden).unwrap();
    assert_eq!(got, embedding::embedding_ref(&ids, &tq, hidden));
}

#[test]
fn rmsnorm_matches_reference() {
    let g = gpu();
    let mut r = rng(7);
    // Both kernels on every adapter; 70 rows spill past one 64-row lane workgroup.
    for kernel in [rmsnorm::RmsNormKernel::Workgroup, rmsnorm::RmsNormKernel::Lane] {
        for (rows, width) in [(13usize, 67usize), (3, 1000), (1, 5), (70, 33)] {
            let x = randn(&mut r, rows * width, 3.0);
            let w = randn(&mut r, width, 1.0);
            let xb = g.storage_from("x", &x).unwrap();
            let wb = g.storage_from("w", &w).unwrap();
            let yb = g.storage_buffer("y", (rows * width * 4) as u64).unwrap();
            let mut rec = Recorder::new(&g);
            rmsnorm::rmsnorm_with(&mut rec, kernel, &xb, &wb, &yb, rows, width, 1e-6);
            rec.finish().unwrap();
            let got: Vec<f32> = g.read(&yb, 0, rows * width).unwrap();
            let want = rmsnorm::rmsnorm_ref(&x, &w, width, 1e-6);
            assert_close(&format!("rmsnorm {kernel:?} {rows}x{width}"), &got, &want, 1e-5, 1e-6);
        }
    }
}

#[test]
fn rope_matches_reference_and_rotates() {
    let g = gpu();
    let mut r = rng(8);
    let (tokens, heads, hd) = (11, 3, 18);
    let positions: Vec<i64> = (0..tokens as i64).map(|t| (t * 7) % 5 + t).collect();
    let tables = rope::rope_tables(&positions, 1, &rope::inv_freq(hd, 10000.0), &vec![0; hd / 2]);
    // Position 0 is the identity rotation.
    assert!(tables.cos[..hd / 2].iter().all(|&c| c == 1.0) && tables.sin[..hd / 2].iter().all(|&s| s == 0.0));
    let x = randn(&mut r, (tokens + 2) * heads * hd, 1.0);
    let xb = g.storage_from("x", &x).unwrap();
    let cb = g.storage_from("cos", &tables.cos).unwrap();
    let sb = g.storage_from("sin", &tables.sin).unwrap();
    let mut rec = Recorder::new(&g);
    rope::rope(&mut rec, &cb, &sb, &xb, tokens, heads, hd, 2);
    rec.finish().unwrap();
    let got: Vec<f32> = g.read(&xb, 0, x.len()).unwrap();
    let row = heads * hd;
    assert_eq!(&got[..2 * row], &x[..2 * row], "rows before row_offset untouched");
    let want = rope::rope_ref(&x[2 * row..], &tables, heads, hd);
    assert_close("rope", &got[2 * row..], &want, 1e-6, 1e-6);
    // A rotation keeps each pair's norm.
    let n0: f32 = x[2 * row..].iter().map(|v| v * v).sum();
    let n1: f32 = want.iter().map(|v| v * v).sum();
    assert!((n0 - n1).abs() < 1e-3 * n0);
}

#[test]
fn swiglu_stats_groups_exclusion_and_intervention() {
    let g = gpu();
    let mut r = rng(11);
    let (tokens, width, layers, groups, layer) = (53usize, 77usize, 3usize, 4usize, 1usize);
    let gate = randn(&mut r, tokens * width, 4.0);
    let up = randn(&mut r, tokens * width, 1.0);
    // Runs of groups with exclusions in between, as a packed batch with a position rule produces.
    let token_group: Vec<u32> =
        (0..tokens).map(|t| if t % 7 == 3 { swiglu::EXCLUDED } else { [2u32, 0, 3, 0][(t / 15) % 4] }).collect();
    // Two intervention maps ([maps, layers, width, 2]); sequences of 10 tokens alternate them.
    let maps = 2;
    let token_map: Vec<u32> = (0..tokens).map(|t| ((t / 10) % 2) as u32).collect();
    let mut interv = vec![0f32; maps * layers * width * 2];
    for j in 0..width {
        let (s, b) = if j % 5 == 0 {
            (0.0, 0.0)
        } else if j % 5 == 1 {
            (0.0, 0.25)
        } else {
            (1.0 + j as f32 * 0.01, 0.0)
        };
        interv[(layer * width + j) * 2] = s;
        interv[(layer * width + j) * 2 + 1] = b;
        let at = ((layers + layer) * width + j) * 2;
        interv[at] = if j % 3 == 0 { 0.5 } else { 1.0 };
        interv[at + 1] = if j % 3 == 1 { -0.1 } else { 0.0 };
    }
    let acc_words = groups * layers * width * swiglu::ACC_WORDS;
    let gb = g.storage_from("gate", &gate).unwrap();
    let ub = g.storage_from("up", &up).unwrap();
    let ib = g.storage_from("iv", &interv).unwrap();
    let acc = g.storage_from("acc", &vec![0u32; acc_words]).unwrap();
    let blocks = [swiglu::AccBlock { buffer: acc.clone(), first_group: 0, groups }];
    // Two calls (accumulators must add up across them): one dispatch pair for all segments,
    // then three segments per pair.
    for per_dispatch in [usize::MAX, 3] {
        let segments = swiglu::TokenSegments::with_segments_per_dispatch(
            &g,
            &token_group,
            Some(&token_map),
            width,
            true,
            per_dispatch,
        );
        let segments = segments.unwrap();
        g.write_padded(&gb, 0, bytemuck::cast_slice(&gate));
        let mut rec = Recorder::new(&g);
        let side = swiglu::SwigluSide { segments: &segments, intervention: &ib, acc: Some(&blocks), layer, layers };
        swiglu::swiglu(&mut rec, &gb, &ub, &side, width);
        rec.finish().unwrap();
    }
    let h: Vec<f32> = g.read(&gb, 0, gate.len()).unwrap();
    let mut want = swiglu::NeuronSums {
        count_pos: vec![0; groups * width],
        sum: vec![0.0; groups * width],
        sum_sq: vec![0.0; groups * width],
    };
    let map_iv = |m: usize| &interv[(m * layers + layer) * width * 2..(m * layers + layer + 1) * width * 2];
    let layer_ivs = [map_iv(0), map_iv(1)];
    let want_h = swiglu::swiglu_ref(&gate, &up, &token_group, &token_map, &layer_ivs, width, &mut want);
    swiglu::swiglu_ref(&gate, &up, &token_group, &token_map, &layer_ivs, width, &mut want);
    assert_close("swiglu h", &h, &want_h, 1e-5, 1e-6);
    let words: Vec<u32> = g.read(&acc, 0, acc_words).unwrap();
    let got = swiglu::NeuronSums::from_words(&words);
    for gi in 0..groups {
        for l in 0..layers {
            for j in 0..width {
                let a = (gi * layers + l) * width + j;
                if l != layer {
                    assert_eq!((got.count_pos[a], got.sum[a]), (0, 0.0), "other layers untouched");
                    continue;
                }
                let b = gi * width + j;
                assert_eq!(got.count_pos[a], want.count_pos[b], "count g{gi} j{j}");
                assert!(
                    (got.sum[a] - want.sum[b]).abs() <= 1e-5 * want.sum_sq[b].sqrt().max(1e-3),
                    "sum g{gi} j{j}: {} vs {}",
                    got.sum[a],
                    want.sum[b]
                );
                assert!((got.sum_sq[a] - want.sum_sq[b]).abs() <= 1e-5 * want.sum_sq[b].max(1e-3), "sum_sq g{gi} j{j}");
            }
        }
    }
    assert!(want.count_pos[width..2 * width].iter().all(|&c| c == 0), "group 1 never appears");
}

#[test]
fn swiglu_stats_do_not_drift_over_1e8_positions() {
    // 8 neurons x 2^20 tokens x 96 dispatches = 1.0e8 positions per neuron. Values cycle through
    // a fixed pattern so the exact f64 totals are known; a plain f32 running sum would stall at
    // 2^24 x spacing and be off by orders of magnitude.
    let g = gpu();
    let (width, tokens, reps) = (8usize, 1usize << 20, 96usize);
    let pattern: Vec<f32> = (0..width * 16).map(|i| ((i * 37) % 29) as f32 * 0.173 - 1.9).collect();
    let gate: Vec<f32> = (0..tokens * width).map(|i| pattern[i % pattern.len()]).collect();
    let up = vec![1.0f32; tokens * width];
    let token_group = vec![0u32; tokens];
    let interv: Vec<f32> = (0..width).flat_map(|_| [1.0f32, 0.0]).collect();
    let gb = g.storage_from("gate", &gate).unwrap();
    let hb = g.storage_buffer("h", (gate.len() * 4) as u64).unwrap();
    let ub = g.storage_from("up", &up).unwrap();
    let segments = swiglu::TokenSegments::new(&g, &token_group, None, width, true).unwrap();
    let ib = g.storage_from("iv", &interv).unwrap();
    let acc = g.storage_from("acc", &vec![0u32; width * swiglu::ACC_WORDS]).unwrap();
    let blocks = [swiglu::AccBlock { buffer: acc.clone(), first_group: 0, groups: 1 }];
    for _ in 0..reps {
        let mut rec = Recorder::new(&g);
        rec.copy(&gb, 0, &hb, 0, (gate.len() * 4) as u64);
        let side =
            swiglu::SwigluSide { segments: &segments, intervention: &ib, acc: Some(&blocks), layer: 0, layers: 1 };
        swiglu::swiglu(&mut rec, &hb, &ub, &side, width);
        rec.finish().unwrap();
    }
    let words: Vec<u32> = g.read(&acc, 0, width * swiglu::ACC_WORDS).unwrap();
    assert!(words.chunks(swiglu::ACC_WORDS).any(|c| c[2] != 0), "Kahan compensation is live, not folded away");
    let got = swiglu::NeuronSums::from_words(&words);
    for j in 0..width {
        let (mut c, mut s, mut q) = (0u64, 0f64, 0f64);
        for t in 0..tokens {
            let a = swiglu::silu(gate[t * width + j]) as f64;
            c += (a > 0.0) as u64;
            s += a;
            q += a * a;
        }
        let n = reps as f64;
        assert_eq!(got.count_pos[j], c * reps as u64, "count neuron {j}");
        assert!(
            (got.sum[j] - s * n).abs() <= 1e-5 * (s * n).abs().max(1.0),
            "sum neuron {j}: {} vs {}",
            got.sum[j],
            s * n
        );
        assert!((got.sum_sq[j] - q * n).abs() <= 1e-5 * q * n, "sum_sq neuron {j}: {} vs {}", got.sum_sq[j], q * n);
    }
}

#[test]
fn gather_rows_picks_positions() {
    let g = gpu();
    let mut r = rng(12);
    let (n, width) = (29, 45);
    let src = randn(&mut r, n * width, 1.0);
    let rows = vec![28u32, 0, 13, 13];
    let sb = g.storage_from("src", &src).unwrap();
    let rb = g.storage_from("rows", &rows).unwrap();
    let db = g.storage_buffer("dst", (rows.len() * width * 4) as u64).unwrap();
    let mut rec = Recorder::new(&g);
    gather::gather_rows(&mut rec, &sb, &rb, &db, rows.len(), width);
    rec.finish().unwrap();
    let picked = gather::gather_rows_ref(&src, &rows, width);
    assert_eq!(g.read::<f32>(&db, 0, rows.len() * width).unwrap(), picked);
    let mut rec = Recorder::new(&g);
    gather::gather_rows_add(&mut rec, &sb, &rb, &db, rows.len(), width);
    rec.finish().unwrap();
    let doubled: Vec<f32> = picked.iter().map(|v| v + v).collect();
    assert_eq!(g.read::<f32>(&db, 0, rows.len() * width).unwrap(), doubled);
}

#[test]
fn activations_match_reference() {
    let g = gpu();
    let mut r = rng(13);
    let mut x = randn(&mut r, 1001, 6.0);
    x.extend([0.0, -0.0, 1e-6, -1e-6, 10.0, -10.0, 30.0, -30.0]);
    assert!((activation::erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-15);
    assert!((activation::erf(3.0) - 0.999_977_909_503_001_4).abs() < 1e-15);
    for act in [activation::Activation::Gelu, activation::Activation::QuickGelu] {
        let xb = g.storage_from("x", &x).unwrap();
        let mut rec = Recorder::new(&g);
        activation::activation(&mut rec, act, &xb, x.len());
        rec.finish().unwrap();
        let got: Vec<f32> = g.read(&xb, 0, x.len()).unwrap();
        let want: Vec<f32> = x.iter().map(|&v| act.reference(v)).collect();
        assert_close(&format!("{act:?}"), &got, &want, 2e-6, 1e-7);
    }
}

#[test]
fn layernorm_matches_reference() {
    let g = gpu();
    let mut r = rng(14);
    for (rows, width) in [(7usize, 33usize), (2, 777), (1, 3)] {
        let x: Vec<f32> = randn(&mut r, rows * width, 3.0).iter().map(|v| v + 5.0).collect();
        let w = randn(&mut r, width, 1.0);
        let b = randn(&mut r, width, 0.5);
        let (xb, wb, bb) =
            (g.storage_from("x", &x).unwrap(), g.storage_from("w", &w).unwrap(), g.storage_from("b", &b).unwrap());
        let yb = g.storage_buffer("y", (rows * width * 4) as u64).unwrap();
        let mut rec = Recorder::new(&g);
        layernorm::layernorm(&mut rec, &xb, &wb, &bb, &yb, rows, width, 1e-5);
        rec.finish().unwrap();
        let got: Vec<f32> = g.read(&yb, 0, rows * width).unwrap();
        assert_close("layernorm", &got, &layernorm::layernorm_ref(&x, &w, &b, width, 1e-5), 1e-5, 2e-6);
    }
}
