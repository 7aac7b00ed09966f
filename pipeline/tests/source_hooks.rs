//! What a live source can tell the runtime beyond its frames: a device's capture instant (the
//! deadline and end-to-end latency count from it), `Idle` polls that are not frames, and counters
//! that land in the capture stage's report.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use perch_pipeline::{FrameData, Pipeline, PixelFormat, Source, SourceEvent, SourceInfo};

/// Every other call has no frame (a camera between frames); each frame "waited in the driver" for
/// `driver_wait` before it was read.
struct DriverSource {
    calls: u64,
    frames: u64,
    n: u64,
    driver_wait: Duration,
    last: Option<Instant>,
}

impl Source for DriverSource {
    fn info(&self) -> SourceInfo {
        SourceInfo { name: "driver".into(), width: 4, height: 2, ..Default::default() }
    }
    fn next_frame(&mut self, data: &mut FrameData) -> SourceEvent {
        self.calls += 1;
        if self.frames == self.n {
            return SourceEvent::End;
        }
        if self.calls % 2 == 1 {
            return SourceEvent::Idle;
        }
        data.image.reshape(PixelFormat::Rgb8, 4, 2);
        self.last = Instant::now().checked_sub(self.driver_wait);
        self.frames += 1;
        SourceEvent::Frame { source_index: self.frames - 1, source_ts: Duration::ZERO }
    }
    fn captured_at(&self) -> Option<Instant> {
        self.last
    }
    fn counters(&self) -> Vec<(String, u64)> {
        vec![("idle_polls".into(), self.calls - self.frames - 1)]
    }
    fn is_live(&self) -> bool {
        true
    }
}

fn run(driver_wait: Duration, budget: Duration) -> perch_pipeline::RunReport {
    let source = DriverSource { calls: 0, frames: 0, n: 20, driver_wait, last: None };
    let p = Pipeline { source: Box::new(source), stages: vec![], taps: vec![], budget, pool_size: Some(4) };
    p.run(Arc::new(AtomicBool::new(false))).unwrap()
}

#[test]
fn idle_polls_are_not_frames_and_take_no_buffer() {
    let r = run(Duration::ZERO, Duration::from_secs(10));
    assert!(r.invariant_ok, "{}", r.table());
    assert_eq!((r.frames.captured, r.frames.published), (20, 20));
    assert_eq!(r.stages[0].processed, 20);
    // One per frame plus the call that found the end, as for any source: an Idle poll keeps its buffer.
    assert_eq!(r.pool.takes, 21, "an Idle poll keeps its buffer for the next frame");
    assert_eq!(r.stages[0].counters["idle_polls"], 20, "source counters sit with the capture stage's");
    assert_eq!(r.stages[0].counters["decode_errors"], 0);
}

#[test]
fn the_capture_instant_starts_the_latency_and_the_deadline() {
    let wait = Duration::from_millis(40);
    let r = run(wait, Duration::from_secs(10));
    assert!(r.end_to_end.p50_ms >= 40.0, "end to end counts the driver wait: {}", r.table());
    assert!(r.stages[0].latency.p50_ms < 40.0, "capture latency is the read only");
    // A budget shorter than the driver wait: every frame is already late when it is published.
    let r = run(wait, Duration::from_millis(20));
    assert_eq!(r.published_late, 20, "{}", r.table());
}
