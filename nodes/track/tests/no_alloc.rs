//! The late-detection history allocates nothing per frame: snapshots reuse their buffers. (Well
//! separated objects, so the assignment never builds a matrix: that part is `pathfinding`'s.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use perch_track::late::{Input, LateOutcome, LateTracker};
use perch_track::{Det, TrackOut, TrackerParams};

struct CountingAlloc;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator; counting is one atomic add.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc`/`realloc` above with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn dets(f: u64, out: &mut Vec<Det>) {
    out.clear();
    out.extend((0..8).map(|i| {
        let x = 10.0 + 150.0 * i as f64 + 2.0 * f as f64;
        Det { xyxy: [x, 40.0, x + 40.0, 140.0], score: 0.9, class_id: 0 }
    }));
}

#[test]
fn late_results_every_third_frame_allocate_nothing_in_steady_state() {
    let mut t = LateTracker::new(TrackerParams::default(), 64);
    let (mut out, mut d): (Vec<TrackOut>, Vec<Det>) = (Vec::with_capacity(64), Vec::with_capacity(64));
    let mut at_start = 0;
    for f in 0..400u64 {
        if f == 200 {
            at_start = ALLOCS.load(Ordering::SeqCst);
        }
        // The async schedule at 30 fps with a 90 ms detector: frame k's result lands with k + 3.
        let input = if f >= 3 && f % 3 == 0 {
            dets(f - 3, &mut d);
            Input::Late { seq: f - 3, dets: &d }
        } else {
            Input::Coast
        };
        let outcome = t.step(f, Duration::from_millis(33 * f), input, &mut out);
        if f >= 3 && f % 3 == 0 {
            assert!(matches!(outcome, Some(LateOutcome::Applied { frames_back: 3 })), "{outcome:?}");
        }
    }
    assert_eq!(out.len(), 8);
    let allocs = ALLOCS.load(Ordering::SeqCst) - at_start;
    assert_eq!(allocs, 0, "{allocs} allocations in 200 steady-state frames");
}
