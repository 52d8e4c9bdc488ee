use crate::gpu::{Binding, Recorder};

use super::{row_grid, shaders};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    count: u32,
    width: u32,
    _pad0: u32,
    _pad1: u32,
}

/// dst[i, :] = src[rows[i], :] for `count` rows of `width` f32.
pub fn gather_rows(
    rec: &mut Recorder,
    src: &wgpu::Buffer,
    rows: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    count: usize,
    width: usize,
) {
    let gpu = rec.gpu().clone();
    let pipeline = shaders::pipeline(&gpu, "gather_rows", shaders::GATHER_ROWS);
    let params = Params { count: count as u32, width: width as u32, _pad0: 0, _pad1: 0 };
    rec.dispatch(
        &pipeline,
        &params,
        &[Binding::Whole(src), Binding::Whole(rows), Binding::Whole(dst)],
        row_grid((width as u32).div_ceil(64), count),
    );
}

pub fn gather_rows_ref(src: &[f32], rows: &[u32], width: usize) -> Vec<f32> {
    rows.iter().flat_map(|&r| src[r as usize * width..(r as usize + 1) * width].to_vec()).collect()
}
