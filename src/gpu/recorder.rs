use std::sync::Arc;

use super::context::{Gpu, GpuError};
use super::profiler::DISPATCHES_PER_SET;

/// One storage binding: a whole buffer, or a byte range of it.
#[derive(Clone, Copy)]
pub enum Binding<'a> {
    Whole(&'a wgpu::Buffer),
    Range(&'a wgpu::Buffer, u64, u64),
}

impl<'a> From<&'a wgpu::Buffer> for Binding<'a> {
    fn from(b: &'a wgpu::Buffer) -> Self {
        Binding::Whole(b)
    }
}

enum Op {
    Dispatch { pipeline: wgpu::ComputePipeline, bind_group: wgpu::BindGroup, groups: [u32; 3] },
    Copy { src: wgpu::Buffer, src_offset: u64, dst: wgpu::Buffer, dst_offset: u64, size: u64 },
}

const ARENA_BYTES: u64 = 64 * 1024;

/// Records a whole forward pass (many dispatches, one submit). Each dispatch's small parameter
/// struct goes into a uniform arena written once at submit, so recording never waits on the GPU.
pub struct Recorder {
    gpu: Arc<Gpu>,
    ops: Vec<Op>,
    arenas: Vec<(wgpu::Buffer, Vec<u8>)>,
    align: u64,
}

impl Recorder {
    pub fn new(gpu: &Arc<Gpu>) -> Self {
        Recorder {
            gpu: gpu.clone(),
            ops: Vec::new(),
            arenas: Vec::new(),
            align: gpu.limits.min_uniform_buffer_offset_alignment.max(16) as u64,
        }
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    fn stage_params(&mut self, bytes: &[u8]) -> (usize, u64) {
        let need = (bytes.len() as u64).div_ceil(self.align) * self.align;
        let fits = self.arenas.last().map(|(_, staged)| staged.len() as u64 + need <= ARENA_BYTES).unwrap_or(false);
        if !fits {
            let buf = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params arena"),
                size: ARENA_BYTES,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.arenas.push((buf, Vec::with_capacity(ARENA_BYTES as usize)));
        }
        let idx = self.arenas.len() - 1;
        let staged = &mut self.arenas[idx].1;
        let offset = staged.len() as u64;
        staged.extend_from_slice(bytes);
        staged.resize((offset + need) as usize, 0);
        (idx, offset)
    }

    /// Queues `pipeline` with `params` at binding 0 (uniform) and `storage` at bindings 1…n.
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        params: &P,
        storage: &[Binding<'_>],
        groups: [u32; 3],
    ) {
        if groups.contains(&0) {
            return;
        }
        let (arena, offset) = self.stage_params(bytemuck::bytes_of(params));
        let size = std::mem::size_of::<P>() as u64;
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.arenas[arena].0,
                offset,
                size: wgpu::BufferSize::new(size.max(16)),
            }),
        }];
        for (i, b) in storage.iter().enumerate() {
            let resource = match *b {
                Binding::Whole(buf) => buf.as_entire_binding(),
                Binding::Range(buf, off, len) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: buf,
                    offset: off,
                    size: wgpu::BufferSize::new(len),
                }),
            };
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource });
        }
        let bind_group = self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.ops.push(Op::Dispatch { pipeline: pipeline.clone(), bind_group, groups });
    }

    /// Dispatches recorded so far.
    pub fn dispatches(&self) -> usize {
        self.ops.iter().filter(|op| matches!(op, Op::Dispatch { .. })).count()
    }

    pub fn copy(&mut self, src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer, dst_offset: u64, size: u64) {
        if size > 0 {
            self.ops.push(Op::Copy { src: src.clone(), src_offset, dst: dst.clone(), dst_offset, size });
        }
    }

    /// Encodes everything recorded so far and submits it; returns without waiting. While the
    /// device's profiler is on, each dispatch gets its own timestamped pass.
    pub fn submit(self) -> wgpu::SubmissionIndex {
        self.gpu.memory.note(&self.gpu.device);
        for (buf, staged) in &self.arenas {
            self.gpu.queue.write_buffer(buf, 0, staged);
        }
        let profiler = &self.gpu.profiler;
        let timed = profiler.enabled() && self.gpu.has_timestamps();
        let dispatches = self.dispatches();
        if dispatches > 0 {
            self.gpu.first_dispatch.get_or_init(std::time::Instant::now);
        }
        let blocks = if timed { profiler.queries(&self.gpu.device, dispatches) } else { Vec::new() };
        let mut names = Vec::new();
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        let mut pass: Option<wgpu::ComputePass<'static>> = None;
        for op in self.ops {
            match op {
                Op::Dispatch { pipeline, bind_group, groups } => {
                    let timestamp_writes = timed.then(|| {
                        drop(pass.take());
                        let d = names.len();
                        let q = (d % DISPATCHES_PER_SET) as u32;
                        names.push(self.gpu.pipelines.name_of(&pipeline));
                        wgpu::ComputePassTimestampWrites {
                            query_set: &blocks[d / DISPATCHES_PER_SET].set,
                            beginning_of_pass_write_index: Some(2 * q),
                            end_of_pass_write_index: Some(2 * q + 1),
                        }
                    });
                    let p = pass.get_or_insert_with(|| {
                        enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes })
                            .forget_lifetime()
                    });
                    p.set_pipeline(&pipeline);
                    p.set_bind_group(0, &bind_group, &[]);
                    p.dispatch_workgroups(groups[0], groups[1], groups[2]);
                    if timed {
                        drop(pass.take());
                    }
                }
                Op::Copy { src, src_offset, dst, dst_offset, size } => {
                    drop(pass.take());
                    enc.copy_buffer_to_buffer(&src, src_offset, &dst, dst_offset, size);
                }
            }
        }
        drop(pass);
        for b in &blocks {
            enc.resolve_query_set(&b.set, 0..2 * b.count, &b.resolve, 0);
            enc.copy_buffer_to_buffer(&b.resolve, 0, &b.readback, 0, b.resolve.size());
        }
        let index = self.gpu.queue.submit([enc.finish()]);
        if timed {
            profiler.collect(blocks, names, self.gpu.queue.get_timestamp_period());
        }
        index
    }

    /// Submits and blocks until the GPU is done.
    pub fn finish(self) -> Result<(), GpuError> {
        let gpu = self.gpu.clone();
        self.submit();
        gpu.wait()
    }
}

impl Gpu {
    /// A buffer only copied to and from, never bound: only the device's buffer size limits it.
    pub fn transfer_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer, GpuError> {
        if bytes > self.limits.max_buffer_size {
            return Err(GpuError::TooLarge { what: label.to_string(), bytes, limit: self.limits.max_buffer_size });
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).div_ceil(4) * 4,
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        }))
    }

    pub fn storage_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer, GpuError> {
        if bytes > self.limits.max_storage_buffer_binding_size {
            return Err(GpuError::TooLarge {
                what: label.to_string(),
                bytes,
                limit: self.limits.max_storage_buffer_binding_size,
            });
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(16).div_ceil(4) * 4,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        }))
    }

    pub fn storage_from<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<wgpu::Buffer, GpuError> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buf = self.storage_buffer(label, bytes.len() as u64)?;
        self.write_padded(&buf, 0, bytes);
        Ok(buf)
    }

    /// queue.write_buffer needs a multiple of 4 bytes; odd-length tails are zero padded.
    pub fn write_padded(&self, buf: &wgpu::Buffer, offset: u64, bytes: &[u8]) {
        if bytes.len().is_multiple_of(4) {
            self.queue.write_buffer(buf, offset, bytes);
        } else {
            let mut v = bytes.to_vec();
            v.resize(bytes.len().div_ceil(4) * 4, 0);
            self.queue.write_buffer(buf, offset, &v);
        }
    }

    /// Copies `count` elements of type T starting at element `first` back to the host.
    pub fn read<T: bytemuck::Pod>(&self, buf: &wgpu::Buffer, first: u64, count: usize) -> Result<Vec<T>, GpuError> {
        let elem = std::mem::size_of::<T>() as u64;
        let size = (count as u64 * elem).div_ceil(4) * 4;
        if size == 0 {
            return Ok(Vec::new());
        }
        if first * elem + size > buf.size() {
            return Err(GpuError::Readback(format!(
                "{count} elements from {first} overrun a buffer of {} bytes",
                buf.size()
            )));
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, first * elem, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv().map_err(|e| GpuError::Readback(e.to_string()))?.map_err(|e| GpuError::Readback(e.to_string()))?;
        let view = staging.get_mapped_range(..).map_err(|e| GpuError::Readback(format!("{e:?}")))?;
        let bytes = &view[..count * elem as usize];
        let out = bytemuck::pod_collect_to_vec(bytes);
        drop(view);
        staging.unmap();
        Ok(out)
    }
}
