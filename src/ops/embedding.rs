use crate::gpu::{Binding, Recorder, WeightTensor};

use super::{row_grid, shaders};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tokens: u32,
    hidden: u32,
    row_start: u32,
    rows: u32,
}

/// out[t, :] = table[ids[t], :]; `ids` holds u32 token ids already checked against the vocab.
pub fn embedding(rec: &mut Recorder, ids: &wgpu::Buffer, table: &WeightTensor, out: &wgpu::Buffer, tokens: usize) {
    let gpu = rec.gpu().clone();
    let pipeline = shaders::weight_pipeline(&gpu, "embedding", shaders::EMBEDDING, table.dtype);
    for chunk in &table.chunks {
        let params = Params {
            tokens: tokens as u32,
            hidden: table.cols as u32,
            row_start: chunk.row_start as u32,
            rows: chunk.rows as u32,
        };
        rec.dispatch(
            &pipeline,
            &params,
            &[Binding::Whole(ids), Binding::Whole(&chunk.buffer), Binding::Whole(out)],
            row_grid((table.cols as u32).div_ceil(64), tokens),
        );
    }
}

pub fn embedding_ref(ids: &[u32], table: &[f32], hidden: usize) -> Vec<f32> {
    ids.iter().flat_map(|&id| table[id as usize * hidden..(id as usize + 1) * hidden].to_vec()).collect()
}
