//! The camera as a [`Source`]: a live stream that rides out unplugs, stalls and driver errors.
//!
//! States: `Up` (a session: open device, mapped buffers, streaming once the pipeline runs), `Down`
//! (the stream failed: retry every `reconnect_ms`) and `GaveUp` (the reconnect cap was reached: the
//! stream ends, the report is still written). Waiting happens in `wait_until_due` in slices of at most
//! 100 ms (a stop request is honoured within one slice); `next_frame` only dequeues, copies or
//! decodes, and hands the buffer straight back to the driver.

use std::time::{Duration, Instant};

use perch_pipeline::{FrameData, Source, SourceEvent, SourceInfo};
use v4l::v4l_sys::{V4L2_BUF_FLAG_ERROR, V4L2_BUF_FLAG_TIMESTAMP_MASK, V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC};

use super::convert;
use super::device::{self, Opened};
use super::modes::fourcc_str;
use super::queue::{Dequeued, Readiness};
use super::settings::CameraRequest;

/// Buffers the driver cycles through: enough to absorb a slow decode, few enough to stay fresh.
const BUFFERS: u32 = 4;
/// Longest single wait, so a stop request is seen promptly.
const SLICE: Duration = Duration::from_millis(100);
/// A driver timestamp older than this is not believed (some drivers stamp with another clock).
const MAX_DRIVER_AGE: Duration = Duration::from_secs(10);

struct Session {
    cam: Opened,
    /// `poll` said a filled buffer is waiting.
    ready: bool,
    /// Last frame (or stream start): the `timeout_ms` clock.
    last_activity: Instant,
    last_seq: Option<u32>,
    /// Set when this session replaced a failed one: its first frame ends the outage.
    recovering: Option<Outage>,
}

struct Outage {
    /// Exposure of the last frame before the failure (the start of the gap in the stream).
    since: Instant,
    next_attempt: Instant,
    /// Failed reconnect attempts so far.
    attempts: u32,
}

enum Link {
    Up(Box<Session>),
    Down(Outage),
    /// The reconnect cap was reached; holds the start of the unrecovered gap.
    GaveUp(Option<Instant>),
}

/// What the report counts (see [`CameraSource::counters`]).
#[derive(Debug, Default)]
struct Counters {
    disconnects: u64,
    timeouts: u64,
    reconnects: u64,
    failed_attempts: u64,
    /// Closed gaps: from the last frame before a failure to the first one after it.
    downtime: Duration,
    lost_in_downtime: u64,
    lost_in_driver: u64,
}

/// A V4L2 camera (nokhwa's backend) as perch's capture source.
pub struct CameraSource {
    req: CameraRequest,
    name: String,
    info: SourceInfo,
    fps: f64,
    link: Link,
    scratch: Vec<u8>,
    next_index: u64,
    origin: Option<Instant>,
    last_captured: Option<Instant>,
    warned_clock: bool,
    counters: Counters,
}

fn monotonic_now() -> Duration {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which `t` is; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// Frames a stream at `fps` would have delivered strictly between two frames `gap` apart.
fn frames_between(gap: Duration, fps: f64) -> u64 {
    ((gap.as_secs_f64() * fps).round() as u64).saturating_sub(1)
}

impl CameraSource {
    /// Open the configured camera and negotiate its mode (errors name the device and list what exists
    /// or what it offers). Streaming starts with the pipeline's first wait.
    pub fn open(req: CameraRequest) -> anyhow::Result<Self> {
        let cam = device::open(&req, BUFFERS)?;
        let fps = cam.interval.fps();
        tracing::info!(
            "camera {} ({}, driver {}): {} {}x{} @ {} fps granted (asked: {})",
            cam.node,
            cam.info.card,
            cam.info.driver,
            fourcc_str(cam.wire.fourcc),
            cam.wire.width,
            cam.wire.height,
            cam.interval,
            req.describe()
        );
        let info = SourceInfo {
            name: req.device.to_string(),
            width: cam.wire.width,
            height: cam.wire.height,
            fps: Some(fps),
            // Not known: `end_frame` bounds the index, and frames can be lost on the way.
            frames: None,
            device: Some(cam.info.clone()),
        };
        Ok(Self {
            name: req.device.to_string(),
            req,
            info,
            fps,
            link: Link::Up(Box::new(Session { cam, ready: false, last_activity: Instant::now(), last_seq: None, recovering: None })),
            scratch: Vec::new(),
            next_index: 0,
            origin: None,
            last_captured: None,
            warned_clock: false,
            counters: Counters::default(),
        })
    }

    /// The stream failed: close the session and plan the next attempt (or give up).
    fn fail(&mut self, cause: &str, timeout: bool) {
        let now = Instant::now();
        let Link::Up(mut session) = std::mem::replace(&mut self.link, Link::GaveUp(None)) else {
            return;
        };
        let outage = match session.recovering.take() {
            Some(mut o) => {
                // The reopened camera failed before its first frame: one more failed attempt.
                o.attempts += 1;
                self.counters.failed_attempts += 1;
                tracing::debug!("camera {}: reconnect attempt {} failed: {cause}", self.name, o.attempts);
                o
            }
            None => {
                self.counters.disconnects += 1;
                self.counters.timeouts += timeout as u64;
                tracing::warn!(
                    "camera {} lost: {cause}; reconnecting every {} ms ({})",
                    self.name,
                    self.req.reconnect_every.as_millis(),
                    match self.req.reconnect {
                        super::Reconnect::Always => "until it is back".to_string(),
                        super::Reconnect::Attempts(n) => format!("at most {n} attempts"),
                    }
                );
                Outage { since: self.last_captured.unwrap_or(now), next_attempt: now, attempts: 0 }
            }
        };
        drop(session); // STREAMOFF, unmap, close; an unplugged device's errors are ignored
        self.schedule(outage, now);
    }

    fn schedule(&mut self, mut outage: Outage, now: Instant) {
        if self.req.reconnect.allows(outage.attempts + 1) {
            outage.next_attempt = now + self.req.reconnect_every;
            self.link = Link::Down(outage);
        } else {
            tracing::error!(
                "camera {}: giving up after {} reconnect attempt(s); the stream ends here",
                self.name,
                outage.attempts
            );
            self.link = Link::GaveUp(Some(outage.since));
        }
    }

    fn attempt(&mut self, mut outage: Outage) {
        match device::open(&self.req, BUFFERS) {
            Ok(cam) => {
                tracing::info!(
                    "camera {} is back as {}: {} {}x{} @ {} fps",
                    self.name,
                    cam.node.path,
                    fourcc_str(cam.wire.fourcc),
                    cam.wire.width,
                    cam.wire.height,
                    cam.interval
                );
                self.link = Link::Up(Box::new(Session {
                    cam,
                    ready: false,
                    last_activity: Instant::now(),
                    last_seq: None,
                    recovering: Some(outage),
                }));
            }
            Err(e) => {
                outage.attempts += 1;
                self.counters.failed_attempts += 1;
                if outage.attempts <= 1 || outage.attempts.is_multiple_of(10) {
                    tracing::info!("camera {}: reconnect attempt {} failed: {e:#}", self.name, outage.attempts);
                }
                self.schedule(outage, Instant::now());
            }
        }
    }

    /// The frame's exposure on the `Instant` clock (both are `CLOCK_MONOTONIC` on Linux), or `now`
    /// when the driver stamps with another clock.
    fn exposure(&mut self, d: &Dequeued, now: Instant) -> Instant {
        let monotonic = d.flags & V4L2_BUF_FLAG_TIMESTAMP_MASK == V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC;
        let age = monotonic.then(|| monotonic_now().checked_sub(d.timestamp)).flatten().filter(|a| *a < MAX_DRIVER_AGE);
        match age.and_then(|a| now.checked_sub(a)) {
            Some(t) => t,
            None => {
                if !self.warned_clock {
                    self.warned_clock = true;
                    tracing::warn!(
                        "camera {}: the driver's buffer timestamps are not monotonic (flags {:#x}); \
                         frames are stamped when read, so latency leaves out their wait in the driver",
                        self.name,
                        d.flags
                    );
                }
                now
            }
        }
    }

    /// Dequeue one frame and fill `data` (the session is up and `poll` said it is ready).
    fn read_frame(&mut self, data: &mut FrameData) -> SourceEvent {
        let Link::Up(s) = &mut self.link else { return SourceEvent::Idle };
        s.ready = false;
        let d = match s.cam.queue.dequeue() {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return SourceEvent::Idle,
            Err(e) => {
                let cause = format!("VIDIOC_DQBUF failed: {e}");
                self.fail(&cause, false);
                return SourceEvent::Idle;
            }
        };
        let now = Instant::now();
        s.last_activity = now;
        if let Some(prev) = s.last_seq {
            let gap = d.sequence.wrapping_sub(prev).wrapping_sub(1) as u64;
            if gap > 0 && gap < 1 << 20 {
                self.counters.lost_in_driver += gap;
                self.next_index += gap;
            }
        }
        s.last_seq = Some(d.sequence);
        let recovering = s.recovering.take();
        let outcome = if d.flags & V4L2_BUF_FLAG_ERROR != 0 {
            Err("the driver flagged the frame as damaged (V4L2_BUF_FLAG_ERROR)".to_string())
        } else {
            convert::into_image(&s.cam.wire, s.cam.queue.data(&d), &mut data.image, &mut self.scratch).map_err(|e| format!("{e:#}"))
        };
        let requeued = s.cam.queue.requeue(d.index);
        let captured = self.exposure(&d, now);
        if let Some(o) = recovering {
            let gap = captured.saturating_duration_since(o.since);
            let lost = frames_between(gap, self.fps);
            self.counters.reconnects += 1;
            self.counters.downtime += gap;
            self.counters.lost_in_downtime += lost;
            tracing::info!("camera {}: streaming again after a {:.2} s gap (~{lost} frames lost)", self.name, gap.as_secs_f64());
        }
        let index = self.next_index;
        self.next_index += 1;
        self.last_captured = Some(captured);
        let origin = *self.origin.get_or_insert(captured);
        if let Err(e) = requeued {
            // The frame is good; the stream is not: end the session after delivering it.
            let cause = format!("VIDIOC_QBUF failed: {e}");
            self.fail(&cause, false);
        }
        if self.req.end_frame.is_some_and(|end| index >= end) {
            return SourceEvent::End;
        }
        match outcome {
            Ok(()) => SourceEvent::Frame { source_index: index, source_ts: captured.saturating_duration_since(origin) },
            Err(what) => SourceEvent::DecodeError { source_index: index, what: format!("camera {}: {what}", self.name) },
        }
    }

    /// Start of the current, still open gap in the stream, if any.
    fn open_gap(&self) -> Option<Instant> {
        match &self.link {
            Link::Up(s) => s.recovering.as_ref().map(|o| o.since),
            Link::Down(o) => Some(o.since),
            Link::GaveUp(since) => *since,
        }
    }
}

impl Source for CameraSource {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    fn wait_until_due(&mut self) {
        let now = Instant::now();
        match &mut self.link {
            Link::Up(s) => {
                if s.ready {
                    return;
                }
                if !s.cam.queue.is_streaming() {
                    if let Err(e) = s.cam.queue.start() {
                        let cause = format!("VIDIOC_STREAMON failed: {e}");
                        self.fail(&cause, false);
                        return;
                    }
                    s.last_activity = now;
                }
                let left = self.req.timeout.saturating_sub(now.saturating_duration_since(s.last_activity));
                if left.is_zero() {
                    let cause = format!("no frame for {} ms (source.timeout_ms)", self.req.timeout.as_millis());
                    self.fail(&cause, true);
                    return;
                }
                match s.cam.queue.wait(left.min(SLICE)) {
                    Ok(Readiness::Ready) => s.ready = true,
                    Ok(Readiness::Pending) => {}
                    Ok(Readiness::Failed) => self.fail("the device reported an error (POLLERR: unplugged?)", false),
                    Err(e) => {
                        let cause = format!("poll failed: {e}");
                        self.fail(&cause, false);
                    }
                }
            }
            Link::Down(o) => {
                if now < o.next_attempt {
                    std::thread::sleep((o.next_attempt - now).min(SLICE));
                    return;
                }
                let Link::Down(o) = std::mem::replace(&mut self.link, Link::GaveUp(None)) else { unreachable!() };
                self.attempt(o);
            }
            Link::GaveUp(_) => {}
        }
    }

    fn next_frame(&mut self, data: &mut FrameData) -> SourceEvent {
        if self.req.end_frame.is_some_and(|end| self.next_index >= end) {
            return SourceEvent::End;
        }
        match &self.link {
            Link::Up(s) if s.ready => self.read_frame(data),
            Link::Up(_) | Link::Down(_) => SourceEvent::Idle,
            Link::GaveUp(_) => SourceEvent::End,
        }
    }

    fn captured_at(&self) -> Option<Instant> {
        self.last_captured
    }

    fn is_live(&self) -> bool {
        true
    }

    /// `disconnects` (stream failures: ENODEV/EIO/POLLERR or `timeouts`), `reconnects` (streams
    /// recovered), `reconnect_attempts_failed`, `downtime_ms` (last frame before a failure to the first
    /// after it, an open gap up to now), `frames_lost` = `lost_in_driver` (gaps in the driver's frame
    /// numbering: exact) + `lost_in_downtime` (derived: downtime x granted fps), `gave_up` (0/1).
    fn counters(&self) -> Vec<(String, u64)> {
        let c = &self.counters;
        let (mut downtime, mut lost_downtime) = (c.downtime, c.lost_in_downtime);
        if let Some(since) = self.open_gap() {
            let gap = since.elapsed();
            downtime += gap;
            lost_downtime += (gap.as_secs_f64() * self.fps).floor() as u64;
        }
        vec![
            ("disconnects".into(), c.disconnects),
            ("timeouts".into(), c.timeouts),
            ("reconnects".into(), c.reconnects),
            ("reconnect_attempts_failed".into(), c.failed_attempts),
            ("downtime_ms".into(), downtime.as_millis() as u64),
            ("frames_lost".into(), c.lost_in_driver + lost_downtime),
            ("lost_in_driver".into(), c.lost_in_driver),
            ("lost_in_downtime".into(), lost_downtime),
            ("gave_up".into(), matches!(self.link, Link::GaveUp(_)) as u64),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_between_two_frames_of_a_gap() {
        assert_eq!(frames_between(Duration::from_millis(100), 10.0), 0, "consecutive frames");
        assert_eq!(frames_between(Duration::from_millis(1000), 30.0), 29);
        assert_eq!(frames_between(Duration::from_millis(1010), 30.0), 29);
        assert_eq!(frames_between(Duration::ZERO, 30.0), 0);
    }

    #[test]
    fn the_monotonic_clock_is_the_instant_clock() {
        // captured_at = now - (CLOCK_MONOTONIC now - driver timestamp) relies on this.
        let a = monotonic_now();
        let i = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let b = monotonic_now();
        let j = Instant::now();
        let (dm, di) = (b - a, j - i);
        assert!(dm.abs_diff(di) < Duration::from_millis(5), "{dm:?} vs {di:?}");
    }
}
