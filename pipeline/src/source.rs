//! Where frames come from: the capture side of the pipeline.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::frame::FrameData;

/// What a source knows about its stream before the first frame.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Human name: a folder, a device, a file.
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate, if known.
    pub fps: Option<f64>,
    /// Number of frames the source will deliver (one pass), if known.
    pub frames: Option<u64>,
}

/// What `Source::next_frame` produced.
#[derive(Debug)]
pub enum SourceEvent {
    /// `data.image` now holds a frame.
    Frame { source_index: u64, source_ts: Duration },
    /// A frame existed but could not be decoded; it is counted as `decode_error` and skipped.
    DecodeError { source_index: u64, what: String },
    /// No more frames.
    End,
}

/// A frame producer. Runs on the capture thread; may block (pacing, device waits) but must return
/// promptly once `stop` is set, so Ctrl-C is honoured.
pub trait Source: Send {
    fn info(&self) -> SourceInfo;

    /// Block until the next frame is due (pacing, a camera's next exposure). Not counted as capture
    /// latency. Must return promptly (within about one frame period) so a stop request is honoured.
    fn wait_until_due(&mut self) {}

    /// Fill `data.image` with the next frame (read + decode): the capture stage's measured work.
    fn next_frame(&mut self, data: &mut FrameData) -> SourceEvent;

    /// True when the source delivers at its own rate (a camera, realtime replay) rather than
    /// waiting for the pipeline; a `keep_latest` first queue then drops stale frames, otherwise the
    /// source waits for room.
    fn is_live(&self) -> bool;

    /// Source-specific counters for the report, shown in the `capture` stage's counters (read
    /// after the last frame).
    fn counters(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// Time as the pacing code sees it; the real clock in production, a virtual one in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    fn sleep_until(&self, t: Instant);
}

/// The monotonic system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep_until(&self, t: Instant) {
        let now = Instant::now();
        if t > now {
            std::thread::sleep(t - now);
        }
    }
}

/// A clock that only moves when someone sleeps: deterministic pacing tests without wall time.
#[derive(Debug)]
pub struct VirtualClock {
    base: Instant,
    offset_ns: std::sync::atomic::AtomicU64,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self { base: Instant::now(), offset_ns: Default::default() }
    }
}

impl VirtualClock {
    /// Time elapsed on this clock since it was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.offset_ns.load(std::sync::atomic::Ordering::SeqCst))
    }
    pub fn advance(&self, d: Duration) {
        self.offset_ns.fetch_add(d.as_nanos() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        self.base + self.elapsed()
    }
    fn sleep_until(&self, t: Instant) {
        let target = t.saturating_duration_since(self.base).as_nanos() as u64;
        self.offset_ns.fetch_max(target, std::sync::atomic::Ordering::SeqCst);
    }
}
