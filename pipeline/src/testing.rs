//! Helpers for the stage crates' tests and examples: build frames without writing `Frame { .. }`,
//! a scripted source, a start context, and "run one stage on these frames". Never used by a
//! shipped pipeline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::frame::{Detection, Frame, FrameId, ImageBuf, PixelFormat, StageStamp, MAX_STAGES};
use crate::ledger::Ledger;
use crate::live::LiveStats;
use crate::offload::WorkerBoard;
use crate::pool::FramePool;
use crate::source::{Source, SourceEvent, SourceInfo};
use crate::stage::{Stage, StartContext};
use crate::FrameData;

/// Builds one frame: `testing::frame(&pool, 3).detections(&dets).fresh().build()`.
///
/// Defaults: `source_index = seq`, `source_ts = seq * period` (period 100 ms), captured now, a
/// 100 ms budget, no stamps, no detections.
pub struct FrameBuilder<'a> {
    pool: &'a FramePool,
    seq: u64,
    source_index: u64,
    period: Duration,
    source_ts: Option<Duration>,
    captured_at: Instant,
    budget: Duration,
    stamps: [StageStamp; MAX_STAGES],
    image: Option<&'a ImageBuf>,
    detections: Vec<Detection>,
    of: Option<Of>,
}

enum Of {
    Itself,
    Earlier(FrameId),
}

/// Start building frame `seq` with a buffer from `pool`.
pub fn frame(pool: &FramePool, seq: u64) -> FrameBuilder<'_> {
    FrameBuilder {
        pool,
        seq,
        source_index: seq,
        period: Duration::from_millis(100),
        source_ts: None,
        captured_at: Instant::now(),
        budget: Duration::from_millis(100),
        stamps: [StageStamp::default(); MAX_STAGES],
        image: None,
        detections: Vec::new(),
        of: None,
    }
}

impl<'a> FrameBuilder<'a> {
    pub fn source_index(mut self, i: u64) -> Self {
        self.source_index = i;
        self
    }
    /// Frame period the default `source_ts = seq * period` uses.
    pub fn period(mut self, p: Duration) -> Self {
        self.period = p;
        self
    }
    pub fn source_ts(mut self, ts: Duration) -> Self {
        self.source_ts = Some(ts);
        self
    }
    pub fn captured_at(mut self, t: Instant) -> Self {
        self.captured_at = t;
        self
    }
    /// `deadline = captured_at + budget`.
    pub fn budget(mut self, b: Duration) -> Self {
        self.budget = b;
        self
    }
    pub fn stamps(mut self, stamps: [StageStamp; MAX_STAGES]) -> Self {
        self.stamps = stamps;
        self
    }
    /// Copy `img` into the frame's pooled image buffer.
    pub fn image(mut self, img: &'a ImageBuf) -> Self {
        self.image = Some(img);
        self
    }
    pub fn detections(mut self, dets: &[Detection]) -> Self {
        self.detections = dets.to_vec();
        self
    }
    /// The detections were computed on this frame (`detections_fresh`).
    pub fn fresh(mut self) -> Self {
        self.of = Some(Of::Itself);
        self
    }
    /// The detections were computed on an earlier frame and arrive late with this one.
    pub fn detections_of(mut self, of: FrameId) -> Self {
        self.of = Some(Of::Earlier(of));
        self
    }

    pub fn build(self) -> Frame {
        let ts = self.source_ts.unwrap_or(self.period * self.seq as u32);
        let mut f = Frame::new(self.seq, self.source_index, ts, self.captured_at, self.budget, self.pool.take());
        f.stamps = self.stamps;
        if let Some(img) = self.image {
            f.image.reshape(img.format, img.width, img.height);
            f.image.data.copy_from_slice(&img.data);
        }
        f.detections.extend_from_slice(&self.detections);
        match self.of {
            Some(Of::Itself) => f.mark_detections(f.id()),
            Some(Of::Earlier(of)) => f.mark_detections(of),
            None => {}
        }
        f
    }
}

/// A start context for a stage under test: a source of 768x576 at `fps` (live when `fps` is set).
pub fn start_context(fps: Option<f64>, stage_names: &[&str]) -> StartContext {
    let mut names = vec!["capture".to_string()];
    names.extend(stage_names.iter().map(|s| s.to_string()));
    StartContext {
        source: SourceInfo { name: "test".into(), width: 768, height: 576, fps, frames: None, ..Default::default() },
        live_source: fps.is_some(),
        class_names: None,
        live: Arc::new(LiveStats::new(names, Arc::new(Ledger::new()))),
        budget: Duration::from_millis(100),
        workers: WorkerBoard::default(),
    }
}

/// Run one stage on `frames`: `start`, `process` each in order, `stop`. Returns the frames as the
/// stage left them; the first error stops the run.
pub fn run_stage(stage: &mut dyn Stage, ctx: &mut StartContext, frames: impl IntoIterator<Item = Frame>) -> anyhow::Result<Vec<Frame>> {
    stage.start(ctx)?;
    let mut out = Vec::new();
    for mut f in frames {
        stage.process(&mut f)?;
        out.push(f);
    }
    stage.stop()?;
    Ok(out)
}

/// A source that plays a script: `n` small frames (8x4 RGB; the first 8 bytes of each image are its
/// `source_index`, little-endian, so a test stage can tell frames apart), optionally failing to
/// decode every k-th one, paced by real sleeps or not.
pub struct ScriptedSource {
    pub n: u64,
    next: u64,
    /// Reported by `is_live`.
    pub live: bool,
    /// Real time slept before each frame (0: none).
    pub period: Duration,
    /// Source time between frames (`source_ts = index * ts_step`).
    pub ts_step: Duration,
    /// Every k-th frame fails to decode (0: none).
    pub decode_error_every: u64,
    pub fps: Option<f64>,
}

impl ScriptedSource {
    pub fn new(n: u64) -> Self {
        Self { n, next: 0, live: false, period: Duration::ZERO, ts_step: Duration::from_millis(1), decode_error_every: 0, fps: None }
    }

    /// A live source at `fps`: real sleeps of one period, timestamps on the frame grid.
    pub fn live_at(mut self, fps: f64) -> Self {
        let p = Duration::from_secs_f64(1.0 / fps);
        (self.live, self.period, self.ts_step, self.fps) = (true, p, p, Some(fps));
        self
    }

    /// The `source_index` written into a scripted frame's image.
    pub fn index_of(data: &FrameData) -> Option<u64> {
        data.image.data.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

impl Source for ScriptedSource {
    fn info(&self) -> SourceInfo {
        SourceInfo { name: "scripted".into(), width: 8, height: 4, fps: self.fps, frames: Some(self.n), ..Default::default() }
    }
    fn wait_until_due(&mut self) {
        if !self.period.is_zero() && self.next < self.n {
            std::thread::sleep(self.period);
        }
    }
    fn next_frame(&mut self, data: &mut FrameData) -> SourceEvent {
        if self.next >= self.n {
            return SourceEvent::End;
        }
        let i = self.next;
        self.next += 1;
        let k = self.decode_error_every;
        if k > 0 && i % k == k - 1 {
            return SourceEvent::DecodeError { source_index: i, what: "scripted corrupt frame".into() };
        }
        data.image.reshape(PixelFormat::Rgb8, 8, 4);
        data.image.data[..8].copy_from_slice(&i.to_le_bytes());
        SourceEvent::Frame { source_index: i, source_ts: self.ts_step.saturating_mul(i.min(u32::MAX as u64) as u32) }
    }
    fn is_live(&self) -> bool {
        self.live
    }
}
