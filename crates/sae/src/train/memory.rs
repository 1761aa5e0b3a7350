//! Keeping freed memory in the process between training steps.
//!
//! A step frees and reallocates tensors of 19–50 MB (pre-activations, gradients, Adam
//! temporaries). glibc serves blocks that large with `mmap` and returns them on `free`, so
//! every step faults its pages in again: `perf` put kernel page-fault work at ~15% of a
//! step and `scripts/bench-sae` measured ~1.4× more samples/s with it off
//! (docs/benchmarks.md). The setting is process-wide, so the trainer does not make it on
//! its own: programs that train call [`retain_freed_memory`] once at start.

/// Tells the C allocator to serve large blocks from its heap and not to give freed memory
/// back to the OS (glibc on Linux; a no-op elsewhere). Returns whether the allocator took
/// the settings. Costs resident memory: the process keeps its peak heap.
pub fn retain_freed_memory() -> bool {
    imp::retain()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    // Above the largest per-step tensor (the `[batch, d_sae]` pre-activations, 50 MB at
    // batch 1024 × 12,288 latents), so those come from the heap; the trim threshold keeps
    // freed heap in the process and the top pad grows it in 256 MiB strides.
    const MMAP_THRESHOLD: i32 = 1 << 30;
    const TRIM_THRESHOLD: i32 = i32::MAX;
    const TOP_PAD: i32 = 256 << 20;

    #[allow(unsafe_code)]
    pub(super) fn retain() -> bool {
        // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time
        // from any thread and reads no memory we pass it.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
                && libc::mallopt(libc::M_TOP_PAD, TOP_PAD) == 1
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub(super) fn retain() -> bool {
        false
    }
}
