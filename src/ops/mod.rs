//! One file per GPU op: parameter struct, shape checks, dispatch, and the CPU reference the
//! randomized kernel tests compare against.

pub mod activation;
pub mod attention;
pub mod coop_check;
pub mod embedding;
pub mod gather;
pub mod layernorm;
pub mod matmul;
pub mod matmul_coop;
pub mod rmsnorm;
pub mod rope;
pub mod shaders;
pub mod swiglu;
pub mod wgsl;

/// Workgroup grid for `items` rows, one row per workgroup along y (and z past 65535).
pub(crate) fn row_grid(x_groups: u32, items: usize) -> [u32; 3] {
    let items = items as u32;
    let y = items.min(65535);
    let z = items.div_ceil(65535).max(1);
    [x_groups, y, if items == 0 { 0 } else { z }]
}
