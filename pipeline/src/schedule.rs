//! Deadline-driven scheduling of a slow stage's work (the detector): on every frame, inline on
//! every N-th, or on a side worker that takes the newest frame whenever it is free.
//!
//! [`Scheduled`] wraps an [`Offload`] and decides per frame:
//!
//! | schedule | what happens to a frame |
//! |---|---|
//! | `every_frame` | the work runs on it and the frame waits (today's behaviour; for max-pacing replays and evaluations) |
//! | `interval` | as `every_frame` on every `(interval + 1)`-th frame the stage sees (DeepStream's `interval`); other frames pass at once |
//! | `async` | the frame never waits: if the worker is idle the frame's input is handed over; a result that came back rides on the frame that is passing when it lands |
//! | `auto` | inline when the measured latency fits the frame period and the frame's remaining budget, else `async` |
//!
//! A result is always stamped with the frame it was computed on ([`Frame::mark_detections`]), so
//! a later stage (the tracker) can apply it there and never take it for the current frame's.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::frame::Frame;
use crate::offload::{Done, Offload, Timing};
use crate::stage::StartContext;

/// Which frames the detector runs on (`detect.schedule`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Every frame, the frame waiting for the result.
    #[default]
    EveryFrame,
    /// Every `(interval + 1)`-th frame, inline; the frames in between are tracked (predicted).
    Interval,
    /// On a side worker, always on the newest frame when it is free; no frame waits.
    Async,
    /// Inline while the measured latency fits the frame period and budget, `async` otherwise.
    Auto,
}

impl Schedule {
    pub fn as_str(self) -> &'static str {
        match self {
            Schedule::EveryFrame => "every_frame",
            Schedule::Interval => "interval",
            Schedule::Async => "async",
            Schedule::Auto => "auto",
        }
    }

    /// Whether some frames pass without a result of their own (a tracker must predict them).
    pub fn skips_frames(self) -> bool {
        self != Schedule::EveryFrame
    }
}

/// The knobs of a [`Scheduled`] stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleConfig {
    pub schedule: Schedule,
    /// `interval`: frames skipped between two inline runs.
    pub interval: u32,
    /// Share of a live source's frame period the latency estimate may reach for `auto` to run
    /// inline (1: the estimate, mean + 2 deviations, must fit one period, so frames do not queue up).
    pub inline_share: f64,
    /// Share of the budget kept for the stages after this one when `auto` decides to run inline.
    pub downstream_reserve: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self { schedule: Schedule::EveryFrame, interval: 0, inline_share: 1.0, downstream_reserve: 0.1 }
    }
}

/// What a stage's job does with frames: load a frame's input, store a result onto a frame.
pub trait FrameJob: Send + 'static {
    /// Take `frame`'s input for the worker. Hand buffers over (`std::mem::swap` with the job's
    /// own), do not copy them: the frame goes on with the job's previous buffer.
    fn load(&mut self, frame: &mut Frame);
    /// Write the job's result into `frame.detections` (the frame it is joined to).
    fn store(&self, frame: &mut Frame);
    /// After an inline run, hand the input buffers back to the frame they came from (swap again).
    fn restore(&mut self, _frame: &mut Frame) {}
}

/// Smoothed latency and its deviation (Jacobson/Karels, as TCP estimates round trips):
/// `estimate = mean + 2 * deviation`, so an occasional slow run raises it quickly.
#[derive(Clone, Copy, Debug, Default)]
pub struct LatencyEstimate {
    mean_s: f64,
    dev_s: f64,
    samples: u64,
}

impl LatencyEstimate {
    pub fn add(&mut self, d: Duration) {
        let x = d.as_secs_f64();
        if self.samples == 0 {
            (self.mean_s, self.dev_s) = (x, x / 2.0);
        } else {
            self.dev_s += ((x - self.mean_s).abs() - self.dev_s) / 4.0;
            self.mean_s += (x - self.mean_s) / 8.0;
        }
        self.samples += 1;
    }

    pub fn estimate(&self) -> Option<Duration> {
        (self.samples > 0).then(|| Duration::from_secs_f64(self.mean_s + 2.0 * self.dev_s))
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    inline: u64,
    submitted: u64,
    joined_late: u64,
    passed_without: u64,
    errors: u64,
    unjoined: u64,
}

enum Decision {
    Inline,
    Submit,
    Pass,
}

/// A stage's work under a [`Schedule`]; see the module docs.
pub struct Scheduled<J: FrameJob> {
    cfg: ScheduleConfig,
    offload: Offload<J>,
    estimate: LatencyEstimate,
    /// The source's frame period when it is live (a camera, a realtime replay).
    period: Option<Duration>,
    budget: Duration,
    seen: u64,
    counts: Counts,
}

impl<J: FrameJob> Scheduled<J> {
    /// Reads the frame period (live sources only) and the end-to-end budget from `ctx`.
    pub fn new(cfg: ScheduleConfig, offload: Offload<J>, ctx: &StartContext) -> Self {
        let period = ctx
            .source
            .fps
            .filter(|f| ctx.live_source && f.is_finite() && *f > 0.0)
            .map(|f| Duration::from_secs_f64(1.0 / f));
        Self { cfg, offload, estimate: LatencyEstimate::default(), period, budget: ctx.budget, seen: 0, counts: Counts::default() }
    }

    /// Seed the latency estimate (e.g. with a warm-up run) before the first frame.
    pub fn observe_latency(&mut self, d: Duration) {
        self.estimate.add(d);
    }

    pub fn offload(&self) -> &Offload<J> {
        &self.offload
    }

    /// The current latency estimate `auto` decides with (the virtual latency under virtual timing).
    pub fn latency_estimate(&self) -> Option<Duration> {
        match self.offload.timing() {
            Timing::Virtual(d) => Some(d),
            Timing::Wall => self.estimate.estimate(),
        }
    }

    /// Run the schedule on one frame. On return `frame.detections` holds the result riding with
    /// it (marked with its origin), or nothing. An inline run's error is returned (the frame is
    /// then dropped as `stage_error`); an asynchronous one's is counted and logged.
    pub fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        frame.clear_detections();
        let mut carries = false;
        if let Some(done) = self.offload.poll(&frame.id()) {
            carries = self.join(done, frame, false)?;
            if carries {
                self.counts.joined_late += 1;
            }
        }
        let decision = self.decide(frame, carries);
        self.seen += 1;
        match decision {
            Decision::Inline => {
                self.load_and_submit(frame)?;
                self.counts.inline += 1;
                if let Some(done) = self.offload.wait() {
                    self.join(done, frame, true)?;
                }
            }
            Decision::Submit => {
                self.load_and_submit(frame)?;
                self.counts.submitted += 1;
            }
            Decision::Pass => {}
        }
        if frame.detections_of.is_none() {
            self.counts.passed_without += 1;
        }
        Ok(())
    }

    fn decide(&self, frame: &Frame, carries: bool) -> Decision {
        if self.offload.is_busy() {
            return Decision::Pass;
        }
        match self.cfg.schedule {
            Schedule::EveryFrame => Decision::Inline,
            Schedule::Interval if self.seen % (self.cfg.interval as u64 + 1) == 0 => Decision::Inline,
            Schedule::Interval => Decision::Pass,
            Schedule::Async => Decision::Submit,
            // A frame carries one result: one that just landed goes first, this frame's own later.
            Schedule::Auto if !carries && self.fits_inline(frame) => Decision::Inline,
            Schedule::Auto => Decision::Submit,
        }
    }

    /// `auto`: does a run, at the estimated latency, fit inside the frame period (so frames do not
    /// queue up behind it) and the frame's remaining budget (minus a reserve for later stages)?
    fn fits_inline(&self, frame: &Frame) -> bool {
        let Some(est) = self.latency_estimate() else { return true };
        if self.period.is_some_and(|p| est.as_secs_f64() > self.cfg.inline_share * p.as_secs_f64()) {
            return false;
        }
        let remaining = match self.offload.timing() {
            // On the source clock the frame has just been captured: its whole budget is left.
            Timing::Virtual(_) => self.budget,
            Timing::Wall => frame.deadline.saturating_duration_since(Instant::now()),
        };
        est.as_secs_f64() <= remaining.as_secs_f64() - self.cfg.downstream_reserve * self.budget.as_secs_f64()
    }

    fn load_and_submit(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        let job = self.offload.job().ok_or_else(|| anyhow::anyhow!("no job on hand (the worker is busy)"))?;
        job.load(frame);
        self.offload.submit(frame.id())
    }

    /// Put a finished job's result on `frame` and recycle the job. Returns whether the frame
    /// now carries a result. `inline`: an error is returned instead of counted.
    fn join(&mut self, done: Done<J>, frame: &mut Frame, inline: bool) -> anyhow::Result<bool> {
        let Done { origin, mut job, outcome, took } = done;
        self.estimate.add(took);
        if inline {
            job.restore(frame);
        }
        let carried = match &outcome {
            Ok(()) => {
                job.store(frame);
                frame.mark_detections(origin);
                true
            }
            Err(_) => false,
        };
        self.offload.recycle(job);
        if let Err(e) = outcome {
            self.counts.errors += 1;
            if inline {
                anyhow::bail!("{e}");
            }
            if self.counts.errors <= 5 || self.counts.errors.is_power_of_two() {
                tracing::warn!("the work on frame {} failed ({} failures so far): {e}", origin.seq, self.counts.errors);
            }
        }
        Ok(carried)
    }

    /// Stop the worker. A result still in flight has no frame left to ride on: counted `late_unused`.
    pub fn shutdown(&mut self) {
        if let Some(done) = self.offload.shutdown() {
            self.counts.unjoined += 1;
            self.offload.recycle(done.job);
        }
    }

    /// `inline`, `submitted`, `joined_late`, `passed_without`, `errors`, `late_unused`, `estimate_us`.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let c = &self.counts;
        vec![
            ("inline".into(), c.inline),
            ("submitted".into(), c.submitted),
            ("joined_late".into(), c.joined_late),
            ("passed_without".into(), c.passed_without),
            ("errors".into(), c.errors),
            ("late_unused".into(), c.unjoined),
            ("estimate_us".into(), self.latency_estimate().map_or(0, |d| d.as_micros() as u64)),
        ]
    }
}
