//! Rust heap allocations per video frame in steady state: none. The decoded planes are copied into
//! the pooled image; GStreamer's own buffers come from its buffer pools (C heap, not counted here).
#![cfg(feature = "video")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use perch_capture::{Pacing, SourceConfig, SourceKind};
use perch_pipeline::{FrameData, SourceEvent};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[path = "support/media.rs"]
mod media;

#[global_allocator]
static A: Counting = Counting;

#[test]
fn video_frames_allocate_nothing_on_the_rust_heap() {
    let dir = std::env::temp_dir().join(format!("perch-video-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("clip.mp4");
    media::make_clip(&clip, 40);
    let cfg = SourceConfig { kind: SourceKind::Video, path: clip, pacing: Pacing::Max, ..Default::default() };
    let mut src = perch_capture::open(&cfg).unwrap();
    let mut data = FrameData::default();
    let mut frames = 0;
    let mut next = |data: &mut FrameData| loop {
        match src.next_frame(data) {
            SourceEvent::Frame { .. } => return,
            SourceEvent::Idle => {}
            e => panic!("{e:?}"),
        }
    };
    for _ in 0..5 {
        next(&mut data); // the pooled image grows to the frame size
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..30 {
        next(&mut data);
        frames += 1;
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(allocs, 0, "{allocs} allocations over {frames} frames");
    let _ = std::fs::remove_dir_all(dir);
}
