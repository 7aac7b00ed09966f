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
use crate::metrics::{new_histogram, record, LatencySummary, PoolReport, RunReport, StageReport};
use crate::pool::FramePool;
use crate::queue::{edge, EdgeSender, QueuePolicy};
use crate::source::{Source, SourceEvent};
use crate::stage::{Flow, Stage, StartContext, Tap};

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

/// Where a thread hands its finished frames: the next edge, or out of the pipeline.
enum Downstream {
    Edge(EdgeSender),
    Publish(Publisher),
}

/// The end of the line: records end-to-end latency, feeds the taps, counts the frame published.
struct Publisher {
    ledger: Arc<Ledger>,
    taps: Vec<Box<dyn Tap>>,
    end_to_end: Histogram<u64>,
    published_late: u64,
}

impl Publisher {
    fn publish(&mut self, frame: Frame, now: Instant) {
        record(&mut self.end_to_end, now.saturating_duration_since(frame.captured_at));
        if frame.is_late(now) {
            self.published_late += 1;
        }
        for tap in &mut self.taps {
            tap.observe(&frame);
        }
        self.ledger.publish(frame);
    }
}

impl Downstream {
    fn forward(&mut self, frame: Frame, now: Instant, wait: bool, ledger: &Ledger) {
        match self {
            Downstream::Edge(tx) => {
                if let Err(frame) = tx.send(frame, wait) {
                    ledger.drop_frame(frame, DropReason::Shutdown);
                }
            }
            Downstream::Publish(p) => p.publish(frame, now),
        }
    }
}

/// What a stage thread hands back when it ends.
struct ThreadResult {
    report: StageReport,
    publisher: Option<Publisher>,
}

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
        let Pipeline { mut source, stages, mut taps, budget, pool_size } = self;
        anyhow::ensure!(stages.len() < MAX_STAGES, "at most {} stages are supported", MAX_STAGES - 1);
        let info = source.info();
        // A paced source (camera, realtime replay) must not wait for the pipeline: keep_latest edges
        // evict stale frames. A max-speed replay waits on every edge instead, so it loses nothing.
        let wait = !source.is_live();
        let ledger = Arc::new(Ledger::new());
        let mut names = vec!["capture".to_string()];
        names.extend(stages.iter().map(|s| s.stage.name().to_string()));
        let live = Arc::new(LiveStats::new(names, ledger.clone()));
        let in_flight: usize = stages.iter().map(|s| s.input.capacity() + 1).sum::<usize>() + 2;
        let pool = FramePool::new(pool_size.unwrap_or(in_flight + 2));

        let mut ctx = StartContext { source: info.clone(), class_names: None, live: live.clone(), budget };
        let mut stages = stages;
        for slot in &mut stages {
            let name = slot.stage.name();
            slot.stage.start(&mut ctx).with_context(|| format!("stage `{name}` failed to start"))?;
        }
        for tap in &mut taps {
            let name = tap.name();
            tap.start(&ctx).with_context(|| format!("tap `{name}` failed to start"))?;
        }

        // Wire edges back to front so each thread gets its input receiver and its downstream.
        let mut publisher = Some(Publisher { ledger: ledger.clone(), taps, end_to_end: new_histogram(), published_late: 0 });
        let mut downstream_of_prev: Option<Downstream> = None;
        let mut handles = Vec::new();
        let started = Instant::now();
        let n = stages.len();
        for (rev, slot) in stages.into_iter().rev().enumerate() {
            let index = n - rev; // stamps index: 0 is capture
            let downstream = match downstream_of_prev.take() {
                Some(d) => d,
                None => Downstream::Publish(publisher.take().expect("publisher used once")),
            };
            let (tx, rx, stale) = edge(slot.input, ledger.clone());
            downstream_of_prev = Some(Downstream::Edge(tx));
            let (ledger, live, stop) = (ledger.clone(), live.clone(), stop.clone());
            let name = slot.stage.name();
            let handle = thread::Builder::new()
                .name(format!("perch-{name}"))
                .spawn(move || {
                    let mut result = run_stage(slot, index, rx, downstream, wait, &ledger, &live, &stop);
                    result.report.stale_drops = stale.load(Ordering::Relaxed);
                    result
                })
                .with_context(|| format!("spawning the thread of stage `{name}`"))?;
            handles.push(handle);
        }
        let capture_downstream = match downstream_of_prev.take() {
            Some(d) => d,
            None => Downstream::Publish(publisher.take().expect("publisher used once")),
        };

        let capture = {
            let (ledger, live, stop, pool) = (ledger.clone(), live.clone(), stop.clone(), pool.clone());
            thread::Builder::new()
                .name("perch-capture".into())
                .spawn(move || run_capture(source.as_mut(), capture_downstream, wait, budget, &pool, &ledger, &live, &stop))
                .context("spawning the capture thread")?
        };

        let mut reports = Vec::new();
        let mut publisher = None;
        let capture_result = capture.join().map_err(|_| anyhow::anyhow!("the capture thread panicked"))?;
        reports.push(capture_result.report);
        publisher = publisher.or(capture_result.publisher);
        // Stage threads end in pipeline order once their upstream closes.
        for handle in handles.into_iter().rev() {
            let r = handle.join().map_err(|_| anyhow::anyhow!("a stage thread panicked outside `process`"))?;
            reports.push(r.report);
            publisher = publisher.or(r.publisher);
        }
        let wall = started.elapsed();

        let mut publisher = publisher.context("no thread returned the publisher")?;
        let mut tap_counters = std::collections::BTreeMap::new();
        for tap in &mut publisher.taps {
            if let Err(e) = tap.stop() {
                tracing::warn!("tap `{}` failed to stop cleanly: {e:#}", tap.name());
            }
            tap_counters.insert(tap.name().to_string(), tap.counters().into_iter().collect());
        }
        let frames = ledger.snapshot();
        let deadline_misses = publisher.published_late + frames.dropped(DropReason::Deadline);
        Ok(RunReport {
            schema: "perch.report/1".into(),
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
            pool: PoolReport { size: pool_size.unwrap_or(in_flight + 2), takes: pool.takes(), misses: pool.misses() },
            taps: tap_counters,
            frames,
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn run_capture(
    source: &mut dyn Source,
    mut downstream: Downstream,
    wait: bool,
    budget: Duration,
    pool: &FramePool,
    ledger: &Ledger,
    live: &LiveStats,
    stop: &AtomicBool,
) -> ThreadResult {
    let mut hist = new_histogram();
    let mut last_live = Instant::now();
    let (mut seq, mut processed, mut errors) = (0u64, 0u64, 0u64);
    // A buffer taken for a frame that did not come (`Idle`) waits for the next one.
    let mut spare = None;
    while !stop.load(Ordering::SeqCst) {
        source.wait_until_due();
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let mut data = spare.take().unwrap_or_else(|| pool.take());
        let enter = Instant::now();
        match source.next_frame(&mut data) {
            SourceEvent::Frame { source_index, source_ts } => {
                let now = Instant::now();
                // A camera's frame was captured before it was read: its exposure starts the clock.
                let captured_at = source.captured_at().filter(|t| *t <= now).unwrap_or(now);
                ledger.captured();
                let mut frame = Frame {
                    seq,
                    source_index,
                    source_ts,
                    captured_at,
                    deadline: captured_at + budget,
                    stamps: Default::default(),
                    data,
                };
                frame.stamps[0].enter = Some(enter);
                frame.stamps[0].leave = Some(now);
                record(&mut hist, now - enter);
                processed += 1;
                seq += 1;
                downstream.forward(frame, now, wait, ledger);
            }
            SourceEvent::DecodeError { source_index, what } => {
                ledger.captured();
                ledger.count_drop(DropReason::DecodeError);
                errors += 1;
                seq += 1;
                tracing::warn!("frame {source_index} skipped: {what}");
            }
            SourceEvent::Idle => spare = Some(data),
            SourceEvent::End => break,
        }
        if last_live.elapsed() >= LIVE_REFRESH {
            live.publish_stage(0, &hist);
            last_live = Instant::now();
        }
    }
    live.publish_stage(0, &hist);
    let mut counters = std::collections::BTreeMap::new();
    counters.insert("decode_errors".to_string(), errors);
    counters.extend(source.counters());
    let report = StageReport {
        name: "capture".into(),
        latency: LatencySummary::from_histogram(&hist),
        processed,
        errors,
        counters,
        ..Default::default()
    };
    ThreadResult { report, publisher: into_publisher(downstream) }
}

fn into_publisher(d: Downstream) -> Option<Publisher> {
    match d {
        Downstream::Publish(p) => Some(p),
        Downstream::Edge(_) => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn run_stage(
    mut slot: StageSlot,
    index: usize,
    rx: crossbeam_channel::Receiver<Frame>,
    mut downstream: Downstream,
    wait: bool,
    ledger: &Ledger,
    live: &LiveStats,
    stop: &AtomicBool,
) -> ThreadResult {
    let name = slot.stage.name();
    let (mut service, mut wait_hist) = (new_histogram(), new_histogram());
    let mut c = Counts { processed: 0, overruns: 0, deadline_drops: 0, errors: 0 };
    let mut last_live = Instant::now();
    for mut frame in rx.iter() {
        if stop.load(Ordering::SeqCst) {
            ledger.drop_frame(frame, DropReason::Shutdown);
            continue;
        }
        let enter = Instant::now();
        if let Some(prev) = frame.stamps[index - 1].leave {
            record(&mut wait_hist, enter.saturating_duration_since(prev));
        }
        frame.stamps[index].enter = Some(enter);
        if frame.is_late(enter) {
            c.deadline_drops += 1;
            ledger.drop_frame(frame, DropReason::Deadline);
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
            Ok(Ok(Flow::Continue)) => downstream.forward(frame, leave, wait, ledger),
            Ok(Ok(Flow::Drop(reason))) => ledger.drop_frame(frame, reason),
            Ok(Err(e)) => {
                c.errors += 1;
                if c.errors <= 5 || c.errors.is_power_of_two() {
                    tracing::warn!("stage `{name}` failed on frame {} ({} failures so far): {e:#}", frame.seq, c.errors);
                }
                ledger.drop_frame(frame, DropReason::StageError);
            }
            Err(_) => {
                c.errors += 1;
                tracing::error!("stage `{name}` panicked on frame {}", frame.seq);
                ledger.drop_frame(frame, DropReason::StageError);
            }
        }
        if last_live.elapsed() >= LIVE_REFRESH {
            live.publish_stage(index, &service);
            if let Downstream::Publish(p) = &downstream {
                live.publish_end_to_end(&p.end_to_end);
            }
            last_live = Instant::now();
        }
    }
    live.publish_stage(index, &service);
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
    ThreadResult { report, publisher: into_publisher(downstream) }
}
