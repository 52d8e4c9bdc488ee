//! The device memory a run holds at its busiest: sampled from the allocator's report when each
//! recorded pass is submitted (every buffer it uses is alive then), while watching is on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Default)]
pub struct MemoryWatch {
    on: AtomicBool,
    peak: AtomicU64,
}

impl MemoryWatch {
    /// Starts watching (and forgets an earlier peak).
    pub fn start(&self) {
        self.peak.store(0, Ordering::Relaxed);
        self.on.store(true, Ordering::Relaxed);
    }

    /// Samples the allocator if watching. Backends without an allocator report (Metal, DX12 in
    /// some builds) leave the peak at 0.
    pub fn note(&self, device: &wgpu::Device) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        if let Some(report) = device.generate_allocator_report() {
            self.peak.fetch_max(report.total_allocated_bytes, Ordering::Relaxed);
        }
    }

    /// The largest allocation total seen, None where the backend reports none.
    pub fn peak(&self, device: &wgpu::Device) -> Option<u64> {
        self.note(device);
        device.generate_allocator_report().map(|_| self.peak.load(Ordering::Relaxed))
    }
}
