//! Per-kernel GPU time from timestamp queries. While the profiler is on, every submitted
//! dispatch runs in its own compute pass with a timestamp at each end, and its duration is
//! logged under the kernel's name once the GPU has finished it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// GPU time of one dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTime {
    /// The pipeline's name and variant, e.g. `matmul_lane[bf16]`.
    pub kernel: String,
    pub seconds: f64,
}

/// Timestamps fit 4096 queries in one set: two per dispatch.
pub const DISPATCHES_PER_SET: usize = (wgpu::QUERY_SET_MAX_QUERIES / 2) as usize;

#[derive(Default)]
pub struct Profiler {
    on: AtomicBool,
    log: Arc<Mutex<Vec<KernelTime>>>,
}

impl Profiler {
    pub fn enabled(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Starts logging (clearing what was logged before).
    pub fn start(&self) {
        self.log.lock().expect("profiler log poisoned").clear();
        self.on.store(true, Ordering::Relaxed);
    }

    /// Stops logging and returns the log; the caller has waited for the GPU (readbacks land in
    /// the log when their map callbacks run, which `Gpu::wait` drives).
    pub fn stop(&self) -> Vec<KernelTime> {
        self.on.store(false, Ordering::Relaxed);
        std::mem::take(&mut *self.log.lock().expect("profiler log poisoned"))
    }

    /// A query set and its readback for `dispatches` timed passes.
    pub(super) fn queries(&self, device: &wgpu::Device, dispatches: usize) -> Vec<QueryBlock> {
        (0..dispatches)
            .step_by(DISPATCHES_PER_SET)
            .map(|first| {
                let n = DISPATCHES_PER_SET.min(dispatches - first) as u32;
                let bytes = 16 * n as u64;
                QueryBlock {
                    set: device.create_query_set(&wgpu::QuerySetDescriptor {
                        label: Some("kernel timestamps"),
                        ty: wgpu::QueryType::Timestamp,
                        count: 2 * n,
                    }),
                    resolve: device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("timestamp resolve"),
                        size: bytes,
                        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: false,
                    }),
                    readback: device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("timestamp readback"),
                        size: bytes,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    }),
                    count: n,
                }
            })
            .collect()
    }

    /// After submit: maps each block's readback and logs `names[i]` with its duration.
    pub(super) fn collect(&self, blocks: Vec<QueryBlock>, names: Vec<String>, tick_ns: f32) {
        let mut names = names.into_iter();
        for block in blocks {
            let block_names: Vec<String> = names.by_ref().take(block.count as usize).collect();
            let log = self.log.clone();
            let buf = block.readback.clone();
            block.readback.map_async(wgpu::MapMode::Read, .., move |r| {
                if r.is_err() {
                    return;
                }
                if let Ok(view) = buf.get_mapped_range(..) {
                    let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&view);
                    let mut log = log.lock().expect("profiler log poisoned");
                    for (name, pair) in block_names.into_iter().zip(ticks.chunks_exact(2)) {
                        let ns = pair[1].saturating_sub(pair[0]) as f64 * tick_ns as f64;
                        log.push(KernelTime { kernel: name, seconds: ns * 1e-9 });
                    }
                }
                buf.unmap();
            });
        }
    }
}

pub(super) struct QueryBlock {
    pub set: wgpu::QuerySet,
    pub resolve: wgpu::Buffer,
    pub readback: wgpu::Buffer,
    pub count: u32,
}

/// One kernel's share of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTotal {
    pub kernel: String,
    pub seconds: f64,
    pub calls: usize,
}

/// Total seconds and calls per kernel name, largest total first.
pub fn by_kernel(times: &[KernelTime]) -> Vec<KernelTotal> {
    let mut map: std::collections::BTreeMap<&str, (f64, usize)> = Default::default();
    for t in times {
        let e = map.entry(&t.kernel).or_default();
        e.0 += t.seconds;
        e.1 += 1;
    }
    let mut v: Vec<KernelTotal> =
        map.into_iter().map(|(k, (seconds, calls))| KernelTotal { kernel: k.to_string(), seconds, calls }).collect();
    v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_per_kernel_sorted_by_time() {
        let t = |k: &str, s: f64| KernelTime { kernel: k.into(), seconds: s };
        let v = by_kernel(&[t("rmsnorm", 1.0), t("matmul", 2.0), t("rmsnorm", 1.5)]);
        let total = |k: &str, seconds: f64, calls: usize| KernelTotal { kernel: k.into(), seconds, calls };
        assert_eq!(v, vec![total("rmsnorm", 2.5, 2), total("matmul", 2.0, 1)]);
    }
}
