//! The deadline runtime: one thread per stage, bounded edges, every frame accounted for.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;

use crate::frame::{Frame, MAX_STAGES};
use crate::ledger::{DropReason, Ledger};
use crate::live::{LiveStats, LIVE_REFRESH};
use crate::metrics::{
    new_count_histogram, new_histogram, record, CountSummary, DetectionReport, LatencySummary, PoolReport, RunReport,
    StageReport,
};
use crate::offload::WorkerBoard;
use crate::pool::FramePool;
use crate::queue::{edge, EdgeSender, QueuePolicy};
use crate::source::{Source, SourceEvent};
use crate::stage::{Stage, StartContext, Tap};

/// A stage and how it is connected: the policy of its input queue and its own time budget.
pub struct StageSlot {
    pub stage: Box<dyn Stage>,
    pub input: QueuePolicy,
    pub budget: Option<Duration>,
}

/// A complete pipeline, ready to run once.
pub struct Pipeline {
    pub source: Box<dyn Source>,
    pub stages: Vec<StageSlot>,
    pub taps: Vec<Box<dyn Tap>>,
    /// End-to-end budget of every frame: `deadline = captured_at + budget`.
    pub budget: Duration,
    /// Frame buffers to pre-allocate; default: what the queues and stages can hold at once, plus slack.
    pub pool_size: Option<usize>,
}

/// What every thread of a run shares.
struct RunCtx {
    ledger: Arc<Ledger>,
    live: Arc<LiveStats>,
    stop: Arc<AtomicBool>,
    /// The source is not live: every edge waits for room instead of evicting, so nothing is stale.
    wait: bool,
}

/// Where a thread hands its finished frames: the next edge, or out of the pipeline.
enum Downstream {
    Edge(EdgeSender),
    Publish(Publisher),
}

/// Tallies what the published frames' boxes rest on (fresh, predicted, no detection) and how old.
struct DetectionTally {
    report: DetectionReport,
    age_frames: Histogram<u64>,
    age_ms: Histogram<u64>,
}

impl DetectionTally {
    fn new() -> Self {
        Self { report: DetectionReport::default(), age_frames: new_count_histogram(), age_ms: new_histogram() }
    }

    fn count(&mut self, frame: &Frame) {
        let age = if frame.detections_fresh { Some(crate::frame::DetectionAge::FRESH) } else { frame.detection_age };
        match age {
            Some(a) if a.frames == 0 => self.report.fresh += 1,
            Some(_) => self.report.predicted += 1,
            None => self.report.without += 1,
        }
        if let Some(a) = age {
            self.age_frames.saturating_record(a.frames as u64);
            record(&mut self.age_ms, Duration::from_secs_f32(a.ms.max(0.0) / 1000.0));
        }
    }

    fn finish(mut self, late_unused: u64) -> DetectionReport {
        self.report.age_frames = CountSummary::from_histogram(&self.age_frames);
        self.report.age_ms = LatencySummary::from_histogram(&self.age_ms);
        self.report.late_unused = late_unused;
        self.report
    }
}

/// The end of the line: records end-to-end latency, feeds the taps, counts the frame published.
struct Publisher {
    ledger: Arc<Ledger>,
    taps: Vec<Box<dyn Tap>>,
    end_to_end: Histogram<u64>,
    published_late: u64,
    detection: DetectionTally,
}

impl Publisher {
    fn publish(&mut self, frame: Frame, now: Instant) {
        record(&mut self.end_to_end, now.saturating_duration_since(frame.captured_at));
        if frame.is_late(now) {
            self.published_late += 1;
        }
        self.detection.count(&frame);
        for tap in &mut self.taps {
            tap.observe(&frame);
        }
        self.ledger.publish(frame);
    }
}

impl Downstream {
    fn forward(&mut self, frame: Frame, now: Instant, ctx: &RunCtx) {
        match self {
            Downstream::Edge(tx) => {
                if let Err(frame) = tx.send(frame, ctx.wait) {
                    ctx.ledger.drop_frame(frame, DropReason::Shutdown);
                }
            }
            Downstream::Publish(p) => p.publish(frame, now),
        }
    }

    fn into_publisher(self) -> Option<Publisher> {
        match self {
            Downstream::Publish(p) => Some(p),
            Downstream::Edge(_) => None,
        }
    }
}

/// What a thread hands back when it ends.
struct ThreadResult {
    report: StageReport,
    publisher: Option<Publisher>,
}

#[derive(Default)]
struct Counts {
    processed: u64,
    overruns: u64,
    deadline_drops: u64,
    errors: u64,
}

impl Pipeline {
    /// Run until the source ends or `stop` is set, then drain, stop every stage and report.
    /// With `stop` set, frames still queued are counted as `shutdown` instead of processed.
    pub fn run(self, stop: Arc<AtomicBool>) -> anyhow::Result<RunReport> {
        let Pipeline { mut source, mut stages, mut taps, budget, pool_size } = self;
        anyhow::ensure!(stages.len() < MAX_STAGES, "at most {} stages are supported", MAX_STAGES - 1);
        let info = source.info();
        let live_source = source.is_live();
        let ledger = Arc::new(Ledger::new());
        let mut names = vec!["capture".to_string()];
        names.extend(stages.iter().map(|s| s.stage.name().to_string()));
        let live = Arc::new(LiveStats::new(names, ledger.clone()));
        // Every queue full and every thread holding one frame, plus slack for the edge in between.
        let in_flight: usize = stages.iter().map(|s| s.input.capacity() + 1).sum::<usize>() + 2;
        let pool_size = pool_size.unwrap_or(in_flight + 2);
        let pool = FramePool::new(pool_size);
        let workers = WorkerBoard::default();

        let mut start = StartContext {
            source: info.clone(),
            live_source,
            class_names: None,
            live: live.clone(),
            budget,
            workers: workers.clone(),
        };
        for slot in &mut stages {
            // Interrupted while starting (a model warm-up can take seconds): start nothing more;
            // the capture loop then ends at once and the report says `interrupted`.
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let name = slot.stage.name();
            slot.stage.start(&mut start).with_context(|| format!("stage `{name}` failed to start"))?;
        }
        for tap in &mut taps {
            let name = tap.name();
            tap.start(&start).with_context(|| format!("tap `{name}` failed to start"))?;
        }

        // A paced source (camera, realtime replay) must not wait for the pipeline: keep_latest edges
        // evict stale frames. A max-speed replay waits on every edge instead, so it loses nothing.
        let ctx = Arc::new(RunCtx { ledger: ledger.clone(), live, stop: stop.clone(), wait: !live_source });
        // Wire edges back to front so each thread gets its input receiver and its downstream: the
        // edge into the thread after it, or, for the last thread (the last stage, or capture when
        // there is none), the publisher.
        let mut publisher = Some(Publisher {
            ledger: ledger.clone(),
            taps,
            end_to_end: new_histogram(),
            published_late: 0,
            detection: DetectionTally::new(),
        });
        let mut next_edge: Option<EdgeSender> = None;
        let mut downstream = move |edge: Option<EdgeSender>| match edge {
            Some(tx) => Downstream::Edge(tx),
            None => Downstream::Publish(publisher.take().expect("only the last thread publishes")),
        };
        let mut handles = Vec::new();
        let started = Instant::now();
        let n = stages.len();
        for (rev, slot) in stages.into_iter().rev().enumerate() {
            let index = n - rev; // stamps index: 0 is capture
            let out = downstream(next_edge.take());
            let (tx, rx, stale) = edge(slot.input, ledger.clone());
            next_edge = Some(tx);
            let ctx = ctx.clone();
            let name = slot.stage.name();
            let handle = thread::Builder::new()
                .name(format!("perch-{name}"))
                .spawn(move || {
                    let mut result = run_stage(slot, index, rx, out, &ctx);
                    result.report.stale_drops = stale.load(Ordering::Relaxed);
                    result
                })
                .with_context(|| format!("spawning the thread of stage `{name}`"))?;
            handles.push(handle);
        }
        let capture = {
            let (out, ctx, pool) = (downstream(next_edge.take()), ctx.clone(), pool.clone());
            thread::Builder::new()
                .name("perch-capture".into())
                .spawn(move || run_capture(source.as_mut(), out, budget, &pool, &ctx))
                .context("spawning the capture thread")?
        };

        let capture_result = capture.join().map_err(|_| anyhow::anyhow!("the capture thread panicked"))?;
        let mut reports = vec![capture_result.report];
        let mut publisher = capture_result.publisher;
        // Stage threads end in pipeline order once their upstream closes.
        for handle in handles.into_iter().rev() {
            let r = handle.join().map_err(|_| anyhow::anyhow!("a stage thread panicked outside `process`"))?;
            reports.push(r.report);
            publisher = publisher.or(r.publisher);
        }
        let wall = started.elapsed();

        let mut publisher = publisher.context("no thread returned the publisher")?;
        let mut tap_counters = std::collections::BTreeMap::new();
        let mut output_errors = Vec::new();
        for tap in &mut publisher.taps {
            if let Err(e) = tap.stop() {
                // A tap writes results somewhere: its failure is lost output, reported, not just logged.
                output_errors.push(format!("tap `{}`: {e:#}", tap.name()));
            }
            tap_counters.insert(tap.name().to_string(), tap.counters().into_iter().collect());
        }
        let frames = ledger.snapshot();
        let deadline_misses = publisher.published_late + frames.dropped(DropReason::Deadline);
        let late_unused = reports.iter().filter_map(|r| r.counters.get("late_unused")).sum();
        Ok(RunReport {
            schema: "perch.report/2".into(),
            source: info,
            budget_ms: budget.as_secs_f64() * 1000.0,
            wall_s: wall.as_secs_f64(),
            interrupted: stop.load(Ordering::SeqCst),
            invariant_ok: frames.balanced(),
            fps: frames.published as f64 / wall.as_secs_f64().max(1e-9),
            published_late: publisher.published_late,
            deadline_misses,
            stages: reports,
            end_to_end: LatencySummary::from_histogram(&publisher.end_to_end),
            pool: PoolReport { size: pool_size, takes: pool.takes(), misses: pool.misses() },
            taps: tap_counters,
            output_errors,
            detection: publisher.detection.finish(late_unused),
            workers: workers.reports(wall),
            frames,
        })
    }
}

fn run_capture(source: &mut dyn Source, mut downstream: Downstream, budget: Duration, pool: &FramePool, ctx: &RunCtx) -> ThreadResult {
    let mut hist = new_histogram();
    let mut last_live = Instant::now();
    let (mut seq, mut processed, mut errors) = (0u64, 0u64, 0u64);
    // A decode error that repeats word for word (a ROS 2 topic's unsupported encoding, every frame)
    // is logged once at `warn`, its repeats at `debug`: the count is in the report.
    let mut last_error = String::new();
    // A buffer taken for a frame that did not come (`Idle`) waits for the next one.
    let mut spare = None;
    while !ctx.stop.load(Ordering::SeqCst) {
        source.wait_until_due();
        if ctx.stop.load(Ordering::SeqCst) {
            break;
        }
        let mut data = spare.take().unwrap_or_else(|| pool.take());
        let enter = Instant::now();
        match source.next_frame(&mut data) {
            SourceEvent::Frame { source_index, source_ts } => {
                let now = Instant::now();
                // A camera's frame was captured before it was read: its exposure starts the clock.
                let captured_at = source.captured_at().filter(|t| *t <= now).unwrap_or(now);
                ctx.ledger.captured();
                let mut frame = Frame::new(seq, source_index, source_ts, captured_at, budget, data);
                frame.stamps[0].enter = Some(enter);
                frame.stamps[0].leave = Some(now);
                record(&mut hist, now - enter);
                processed += 1;
                seq += 1;
                downstream.forward(frame, now, ctx);
            }
            SourceEvent::DecodeError { source_index, what } => {
                ctx.ledger.captured();
                ctx.ledger.count_drop(DropReason::DecodeError);
                errors += 1;
                seq += 1;
                if what == last_error {
                    tracing::debug!("frame {source_index} skipped: {what}");
                } else {
                    tracing::warn!("frame {source_index} skipped: {what}");
                    last_error = what;
                }
            }
            SourceEvent::Idle => spare = Some(data),
            SourceEvent::End => break,
        }
        if last_live.elapsed() >= LIVE_REFRESH {
            ctx.live.publish_stage(0, &hist);
            last_live = Instant::now();
        }
    }
    ctx.live.publish_stage(0, &hist);
    let mut counters: std::collections::BTreeMap<String, u64> = source.counters().into_iter().collect();
    counters.insert("decode_errors".to_string(), errors);
    let report = StageReport {
        name: "capture".into(),
        latency: LatencySummary::from_histogram(&hist),
        processed,
        errors,
        counters,
        ..Default::default()
    };
    ThreadResult { report, publisher: downstream.into_publisher() }
}

fn run_stage(
    mut slot: StageSlot,
    index: usize,
    rx: crossbeam_channel::Receiver<Frame>,
    mut downstream: Downstream,
    ctx: &RunCtx,
) -> ThreadResult {
    let name = slot.stage.name();
    let (mut service, mut wait_hist) = (new_histogram(), new_histogram());
    let mut c = Counts::default();
    let mut last_live = Instant::now();
    for mut frame in rx.iter() {
        if ctx.stop.load(Ordering::SeqCst) {
            ctx.ledger.drop_frame(frame, DropReason::Shutdown);
            continue;
        }
        let enter = Instant::now();
        if let Some(prev) = frame.stamps[index - 1].leave {
            record(&mut wait_hist, enter.saturating_duration_since(prev));
        }
        frame.stamps[index].enter = Some(enter);
        if frame.is_late(enter) {
            c.deadline_drops += 1;
            ctx.ledger.drop_frame(frame, DropReason::Deadline);
            continue;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| slot.stage.process(&mut frame)));
        let leave = Instant::now();
        frame.stamps[index].leave = Some(leave);
        let took = leave - enter;
        record(&mut service, took);
        c.processed += 1;
        if slot.budget.is_some_and(|b| took > b) {
            c.overruns += 1;
        }
        match outcome {
            Ok(Ok(())) => downstream.forward(frame, leave, ctx),
            Ok(Err(e)) => {
                c.errors += 1;
                if c.errors <= 5 || c.errors.is_power_of_two() {
                    tracing::warn!("stage `{name}` failed on frame {} ({} failures so far): {e:#}", frame.seq, c.errors);
                }
                ctx.ledger.drop_frame(frame, DropReason::StageError);
            }
            Err(_) => {
                c.errors += 1;
                tracing::error!("stage `{name}` panicked on frame {}", frame.seq);
                ctx.ledger.drop_frame(frame, DropReason::StageError);
            }
        }
        if last_live.elapsed() >= LIVE_REFRESH {
            ctx.live.publish_stage(index, &service);
            if let Downstream::Publish(p) = &downstream {
                ctx.live.publish_end_to_end(&p.end_to_end);
            }
            last_live = Instant::now();
        }
    }
    ctx.live.publish_stage(index, &service);
    if let Err(e) = slot.stage.stop() {
        tracing::warn!("stage `{name}` failed to stop cleanly: {e:#}");
    }
    let report = StageReport {
        name: name.to_string(),
        latency: LatencySummary::from_histogram(&service),
        queue_wait: LatencySummary::from_histogram(&wait_hist),
        processed: c.processed,
        overruns: c.overruns,
        deadline_drops: c.deadline_drops,
        stale_drops: 0,
        errors: c.errors,
        counters: slot.stage.counters().into_iter().collect(),
    };
    ThreadResult { report, publisher: downstream.into_publisher() }
}
