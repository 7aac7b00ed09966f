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
    /// What a capture device granted (cameras only; absent for replays and in reports of older perch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
}

/// A capture device and the mode it granted, as negotiated at start (`width`, `height` and `fps`
/// of [`SourceInfo`] are the granted size and rate).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The node opened, e.g. `/dev/video0` (resolved from an index or a `/dev/v4l/by-id` name).
    pub path: String,
    /// What the driver calls the device (`VIDIOC_QUERYCAP` card), e.g. `HD Pro Webcam C920`.
    pub card: String,
    /// Kernel driver, e.g. `uvcvideo`.
    pub driver: String,
    /// Bus position, e.g. `usb-0000:00:14.0-1`.
    pub bus: String,
    /// Pixel format on the wire (FourCC), e.g. `MJPG` or `YUYV`.
    pub fourcc: String,
    /// Frame interval granted, `[numerator, denominator]` seconds (1/30 s: `[1, 30]`).
    pub interval: [u32; 2],
    /// What was asked for, as configured, e.g. `format auto, 640x480, 30 fps`.
    pub requested: String,
}

/// What `Source::next_frame` produced.
#[derive(Debug)]
pub enum SourceEvent {
    /// `data.image` now holds a frame.
    Frame { source_index: u64, source_ts: Duration },
    /// A frame existed but could not be decoded; it is counted as `decode_error` and skipped.
    DecodeError { source_index: u64, what: String },
    /// No frame this time, and none is lost: a live source is waiting for its device (a frame not
    /// ready yet, a reconnect in progress). The runtime checks for a stop request and asks again.
    Idle,
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

    /// When the frame `next_frame` just returned was captured, if the source knows better than "now"
    /// (a camera: the driver's monotonic buffer timestamp). The runtime makes it the frame's
    /// `captured_at`, so the deadline and the end-to-end latency count the time the frame waited in
    /// the driver's queue. Default: `None`, the instant `next_frame` returned.
    fn captured_at(&self) -> Option<Instant> {
        None
    }

    /// Source-specific counters for the report, shown with the capture stage's (a camera's
    /// disconnects, downtime and frames lost). Read once, after the run.
    fn counters(&self) -> Vec<(String, u64)> {
        Vec::new()
    }

    /// True when the source delivers at its own rate (a camera, realtime replay) rather than
    /// waiting for the pipeline; a `keep_latest` first queue then drops stale frames, otherwise the
    /// source waits for room.
    fn is_live(&self) -> bool;
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
