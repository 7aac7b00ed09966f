//! Keeps freed activation memory in the process instead of returning it to the kernel.
//!
//! One forward pass allocates and frees tens of MB of activations (Candle tensors own their
//! buffers, so they cannot come from our own arena). glibc serves blocks above its mmap
//! threshold with fresh `mmap`s and trims the heap top on free, so every frame paid page faults
//! and kernel page zeroing: layer 0 of YOLOv12n@640 took 7 ms instead of 2.4 ms. Raising both
//! thresholds once keeps the pages mapped; the cost is that the peak stays resident (~70 MB).

/// Tunes glibc's allocator for the detector (idempotent; a no-op on other C libraries).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator parameters; both are valid options.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            }
        });
    }
}
