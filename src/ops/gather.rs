use crate::gpu::{Binding, Recorder};

use super::{row_grid, shaders};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    count: u32,
    width: u32,
    accumulate: u32,
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
    gather(rec, src, rows, dst, (count, width), false)
}

/// dst[i, :] += src[rows[i], :].
pub fn gather_rows_add(
    rec: &mut Recorder,
    src: &wgpu::Buffer,
    rows: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    count: usize,
    width: usize,
) {
    gather(rec, src, rows, dst, (count, width), true)
}

fn gather(
    rec: &mut Recorder,
    src: &wgpu::Buffer,
    rows: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    shape: (usize, usize),
    add: bool,
) {
    let (count, width) = shape;
    let gpu = rec.gpu().clone();
    let pipeline = shaders::pipeline(&gpu, "gather_rows", shaders::GATHER_ROWS);
    let params = Params { count: count as u32, width: width as u32, accumulate: add as u32, _pad1: 0 };
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
