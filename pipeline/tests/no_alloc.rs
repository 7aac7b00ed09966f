//! Steady state allocates nothing per frame: a counting global allocator watches a whole run.
//! (Found under load: crossbeam-channel's waker lists allocate once, lazily; see the assertion.)

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::SleepyStage;
use perch_pipeline::{FrameData, Pipeline, PixelFormat, QueuePolicy, Source, SourceEvent, SourceInfo, StageSlot};

struct CountingAlloc;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged (so
// its contract is the caller's), only counting calls on the side.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for dealloc; `new_size` is the caller's, checked by its contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const FRAMES: u64 = 3000;
const WINDOW: (u64, u64) = (1000, 2500);

/// Writes a 64x48 RGB frame in place and samples the allocation counter at the window's edges.
struct WindowSource {
    next: u64,
    at_start: Arc<AtomicU64>,
    at_end: Arc<AtomicU64>,
}

impl Source for WindowSource {
    fn info(&self) -> SourceInfo {
        SourceInfo { name: "window".into(), width: 64, height: 48, fps: None, frames: Some(FRAMES), ..Default::default() }
    }
    fn next_frame(&mut self, data: &mut FrameData) -> SourceEvent {
        if self.next == WINDOW.0 {
            self.at_start.store(ALLOCS.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        if self.next == WINDOW.1 {
            self.at_end.store(ALLOCS.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        if self.next >= FRAMES {
            return SourceEvent::End;
        }
        data.image.reshape(PixelFormat::Rgb8, 64, 48);
        data.image.data.fill(self.next as u8);
        data.detections.push(perch_pipeline::Detection::new(Default::default(), 1.0, 0));
        self.next += 1;
        SourceEvent::Frame { source_index: self.next, source_ts: Duration::ZERO }
    }
    fn is_live(&self) -> bool {
        false
    }
}

#[test]
fn steady_state_allocates_nothing_per_frame() {
    let (at_start, at_end) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let source = WindowSource { next: 0, at_start: at_start.clone(), at_end: at_end.clone() };
    let stages = ["a", "b", "c"]
        .into_iter()
        .map(|n| StageSlot {
            stage: Box::new(SleepyStage::new(n, Duration::ZERO)),
            input: QueuePolicy::Fifo { capacity: 2 },
            budget: Some(Duration::from_millis(50)),
        })
        .collect();
    let p = Pipeline { source: Box::new(source), stages, taps: vec![], budget: Duration::from_secs(10), pool_size: None };
    let report = p.run(Arc::new(AtomicBool::new(false))).unwrap();
    assert!(report.invariant_ok);
    assert_eq!(report.frames.published, FRAMES);
    assert_eq!(report.pool.misses, 0, "every frame buffer came from the pool");
    let allocs = at_end.load(Ordering::SeqCst) - at_start.load(Ordering::SeqCst);
    // Allocations that are not per frame: crossbeam-channel allocates lazily the first time a
    // thread blocks on a queue: the thread's parking context (an Arc, once per thread) and the
    // queue's list of waiting senders or receivers (a Vec whose capacity is then kept, once per
    // list, two lists per queue). Idle, that happens before the window; on a loaded machine (CI)
    // the first block can fall inside it (seen: up to 9, all traced to crossbeam's `Context::with`).
    // A per-frame allocation would show up ~1,500 times.
    let (threads, queues) = (1 + 3 + 1, 3 + 1);
    let one_time = threads + 2 * queues;
    assert!(
        allocs <= one_time,
        "{allocs} heap allocations during {} steady-state frames (at most {one_time} one-time crossbeam allocations allowed)",
        WINDOW.1 - WINDOW.0,
    );
}
