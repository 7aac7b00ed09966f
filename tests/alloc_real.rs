//! Heap allocations per frame of the real pipeline (replay → preprocess → YOLOv12n → ByteTrack),
//! counted by a global allocator and attributed per thread: each stage's `process` (and the
//! source's `next_frame`) is wrapped to read its thread's counter around the call; what is left
//! is the detector's worker and its thread pool.
//!
//! Asserts what perch guarantees (preprocess and the detect stage's own thread allocate nothing
//! per frame in steady state; the runtime's own zero is `pipeline/tests/no_alloc.rs`, the tracker
//! history's `nodes/track/tests/no_alloc.rs`) and prints the measured figure of the rest: the JPEG
//! decoder of the replay, the tracker's assignment (`pathfinding`'s Kuhn–Munkres allocates per
//! component of more than one candidate pair), the network's activations. Run with `--nocapture`
//! to see the table; the README quotes it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use perch_capture::{Pacing, ReplaySource, SourceConfig};
use perch_detect::{DetectConfig, DetectStage};
use perch_pipeline::{
    Frame, FrameData, Pipeline, QueuePolicy, Schedule, Source, SourceEvent, SourceInfo, Stage, StageSlot, StartContext, SystemClock,
};
use perch_preprocess::{PreprocessConfig, PreprocessStage};
use perch_track::{TrackConfig, TrackStage};

struct CountingAlloc;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    // Const-initialised and without a destructor: safe to touch from inside the allocator.
    static LOCAL: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    let _ = LOCAL.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call unchanged to the system allocator; counting touches only atomics
// and a const-initialised thread-local cell, neither of which allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from `System.alloc`/`realloc` above with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn local() -> u64 {
    LOCAL.with(|c| c.get())
}

const FRAMES: u64 = 70;
/// Frames counted: after warm-up (buffers grown, lazy statics initialised).
const WINDOW: (u64, u64) = (30, 70);

#[derive(Default)]
struct Tally {
    /// Allocations inside the call, over the window's frames.
    allocs: u64,
    frames: u64,
}

/// Counts the allocations a stage's `process` makes on its own thread, for frames in the window.
struct Counted<S> {
    inner: S,
    tally: Arc<Mutex<Tally>>,
}

impl<S: Stage> Stage for Counted<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn start(&mut self, ctx: &mut StartContext) -> anyhow::Result<()> {
        self.inner.start(ctx)
    }
    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        let before = local();
        let r = self.inner.process(frame);
        let n = local() - before;
        if (WINDOW.0..WINDOW.1).contains(&frame.seq) {
            let mut t = self.tally.lock().unwrap();
            t.allocs += n;
            t.frames += 1;
        }
        r
    }
    fn stop(&mut self) -> anyhow::Result<()> {
        self.inner.stop()
    }
    fn counters(&self) -> Vec<(String, u64)> {
        self.inner.counters()
    }
}

/// The replay source, with its `next_frame` counted the same way; samples the global counter at
/// the window's edges.
struct CountedSource {
    inner: ReplaySource,
    next: u64,
    tally: Arc<Mutex<Tally>>,
    global: Arc<Mutex<(u64, u64)>>,
}

impl Source for CountedSource {
    fn info(&self) -> SourceInfo {
        self.inner.info()
    }
    fn wait_until_due(&mut self) {
        self.inner.wait_until_due()
    }
    fn next_frame(&mut self, data: &mut FrameData) -> SourceEvent {
        if self.next == WINDOW.0 {
            self.global.lock().unwrap().0 = ALLOCS.load(Ordering::SeqCst);
        }
        let before = local();
        let e = self.inner.next_frame(data);
        let n = local() - before;
        if (WINDOW.0..WINDOW.1).contains(&self.next) {
            let mut t = self.tally.lock().unwrap();
            t.allocs += n;
            t.frames += 1;
        }
        self.next += 1;
        e
    }
    fn is_live(&self) -> bool {
        self.inner.is_live()
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Allocations per frame in the window: (capture, preprocess, detect stage, track, everything else).
fn measure(schedule: Schedule) -> [f64; 5] {
    let cfg = SourceConfig {
        path: repo().join("datasets/vtest"),
        pacing: Pacing::Max,
        end_frame: Some(FRAMES),
        ..SourceConfig::default()
    };
    let tallies: Vec<Arc<Mutex<Tally>>> = (0..4).map(|_| Arc::default()).collect();
    let global = Arc::new(Mutex::new((0u64, 0u64)));
    let source = CountedSource {
        inner: ReplaySource::open(&cfg, Arc::new(SystemClock)).unwrap(),
        next: 0,
        tally: tallies[0].clone(),
        global: global.clone(),
    };
    let detect = DetectConfig { model: repo().join("models/yolov12n"), imgsz: 320, threads: 2, schedule, ..Default::default() };
    let slot = |stage: Box<dyn Stage>, input| StageSlot { stage, input, budget: None };
    let stages = vec![
        slot(Box::new(Counted { inner: PreprocessStage::new(&PreprocessConfig { imgsz: 320 }).unwrap(), tally: tallies[1].clone() }), QueuePolicy::KeepLatest),
        slot(Box::new(Counted { inner: DetectStage::new(&detect).unwrap(), tally: tallies[2].clone() }), QueuePolicy::Fifo { capacity: 2 }),
        slot(Box::new(Counted { inner: TrackStage::new(&TrackConfig::default()).unwrap(), tally: tallies[3].clone() }), QueuePolicy::Fifo { capacity: 2 }),
    ];
    // The end of the window: the first frame after it reaching the tracker's input is close enough
    // (the counts above are exact per call; this one brackets the worker threads).
    let end = Arc::new(AtomicBool::new(false));
    let p = Pipeline { source: Box::new(source), stages, taps: vec![Box::new(EndOfWindow { end, global: global.clone() })], budget: Duration::from_secs(600), pool_size: None };
    let report = p.run(Arc::new(AtomicBool::new(false))).unwrap();
    assert!(report.invariant_ok && report.frames.published == FRAMES, "{}", report.table());
    assert_eq!(report.pool.misses, 0);
    let per = |t: &Arc<Mutex<Tally>>| {
        let t = t.lock().unwrap();
        assert!(t.frames > 0);
        t.allocs as f64 / t.frames as f64
    };
    let counted: Vec<f64> = tallies.iter().map(per).collect();
    let (start, stop) = *global.lock().unwrap();
    let frames = (WINDOW.1 - WINDOW.0) as f64;
    let total = (stop - start) as f64 / frames;
    let rest = (total - counted.iter().sum::<f64>()).max(0.0);
    [counted[0], counted[1], counted[2], counted[3], rest]
}

/// Samples the global counter when the window's last frame is published.
struct EndOfWindow {
    end: Arc<AtomicBool>,
    global: Arc<Mutex<(u64, u64)>>,
}

impl perch_pipeline::Tap for EndOfWindow {
    fn name(&self) -> &'static str {
        "end_of_window"
    }
    fn observe(&mut self, frame: &Frame) {
        if frame.seq == WINDOW.1 - 1 && !self.end.swap(true, Ordering::SeqCst) {
            self.global.lock().unwrap().1 = ALLOCS.load(Ordering::SeqCst);
        }
    }
}

#[test]
fn allocations_per_frame_of_the_real_pipeline() {
    if !repo().join("models/yolov12n/model.safetensors").exists() {
        perch_pipeline::fixtures::missing("models/yolov12n/model.safetensors missing");
        return;
    }
    println!("heap allocations per frame, frames {}..{} of vtest, YOLOv12n @320:", WINDOW.0, WINDOW.1);
    println!("{:<12} {:>8} {:>11} {:>13} {:>7} {:>26}", "schedule", "capture", "preprocess", "detect stage", "track", "detector worker + rest");
    for schedule in [Schedule::EveryFrame, Schedule::Async] {
        let [capture, pre, detect, track, rest] = measure(schedule);
        println!("{:<12} {capture:>8.1} {pre:>11.1} {detect:>13.1} {track:>7.1} {rest:>26.1}", schedule.as_str());
        assert_eq!(pre, 0.0, "preprocess allocates nothing per frame");
        // The detect thread hands frames over and joins results: nothing per frame. Allowed: the
        // one-time lazy allocations of crossbeam the first time a thread blocks (see no_alloc.rs).
        let detect_total = detect * (WINDOW.1 - WINDOW.0) as f64;
        assert!(detect_total <= 4.0, "the detect stage's own thread allocated {detect_total} times in the window ({})", schedule.as_str());
        assert!(track > 0.0 && rest > 0.0, "if these reach zero, the README's figures are out of date");
    }
}
