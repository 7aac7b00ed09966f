//! Latency histograms and the end-of-run report (human table + JSON).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::ledger::{DropReason, LedgerSnapshot};
use crate::source::SourceInfo;

/// Microsecond histogram from 1 µs to 10 minutes at 3 significant digits. Recording never allocates.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid")
}

/// Record a duration, saturating at the histogram's top instead of failing.
pub fn record(hist: &mut Histogram<u64>, d: Duration) {
    hist.saturating_record((d.as_micros() as u64).max(1));
}

/// Percentiles of one latency distribution, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub n: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl LatencySummary {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            n: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p95_ms: ms(h.value_at_quantile(0.95)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

/// Percentiles of a distribution of counts (e.g. frames).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CountSummary {
    pub n: u64,
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

impl CountSummary {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            n: h.len(),
            p50: h.value_at_quantile(0.50),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// Histogram of small counts (frames), exact up to 2048 and 3 significant digits above.
pub fn new_count_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000, 3).expect("static histogram bounds are valid")
}

/// What the published frames' boxes rest on (schema in the README, `detection`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectionReport {
    /// Published frames the detector ran on (their boxes rest on their own detection).
    pub fresh: u64,
    /// Published frames whose boxes the tracker predicted from an earlier frame's detection.
    pub predicted: u64,
    /// Published frames with no detection behind them (before the first result, or no detector).
    pub without: u64,
    /// Age of the newest detection behind each fresh or predicted published frame, in frames...
    pub age_frames: CountSummary,
    /// ...and in source time.
    pub age_ms: LatencySummary,
    /// Detector results never used: too old for the tracker's history, or still in flight at the
    /// end (the sum of the stages' `late_unused` counters).
    pub late_unused: u64,
}

/// A side worker's numbers (`perch_pipeline::offload`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    pub name: String,
    pub jobs: u64,
    pub errors: u64,
    pub busy_s: f64,
    /// `busy_s / wall_s`: the share of the run the worker was working.
    pub duty_cycle: f64,
    /// Time per job.
    pub latency: LatencySummary,
}

/// One stage's numbers at the end of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StageReport {
    pub name: String,
    /// Time inside `process` (for capture: reading + decoding one frame).
    pub latency: LatencySummary,
    /// Time frames waited in the stage's input queue.
    pub queue_wait: LatencySummary,
    /// Frames this stage processed (called `process` on).
    pub processed: u64,
    /// `process` took longer than the stage's own budget.
    pub overruns: u64,
    /// Frames this stage refused because they were already past their deadline.
    pub deadline_drops: u64,
    /// Frames evicted from this stage's `keep_latest` input queue.
    pub stale_drops: u64,
    /// Frames whose `process` failed.
    pub errors: u64,
    /// Stage-specific counters.
    pub counters: BTreeMap<String, u64>,
}

/// The result of one run, written as JSON by `--report` (schema `perch.report/2`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunReport {
    pub schema: String,
    pub source: SourceInfo,
    pub budget_ms: f64,
    pub wall_s: f64,
    pub interrupted: bool,
    pub frames: LedgerSnapshot,
    pub invariant_ok: bool,
    /// Published frames per second of wall time.
    pub fps: f64,
    /// Frames that finished the pipeline after their deadline (published late).
    pub published_late: u64,
    /// `published_late` + frames dropped for `deadline`.
    pub deadline_misses: u64,
    pub stages: Vec<StageReport>,
    /// Capture instant to the end of the last stage, for published frames.
    pub end_to_end: LatencySummary,
    pub pool: PoolReport,
    pub taps: BTreeMap<String, BTreeMap<String, u64>>,
    /// Results that could not be written (a tap's `stop` failed: e.g. `--detections` lines lost to
    /// a full disk). Empty in a healthy run; `perch run` exits non-zero otherwise.
    #[serde(default)]
    pub output_errors: Vec<String>,
    /// Fresh / predicted published frames and the age of their detections.
    pub detection: DetectionReport,
    /// Side workers of the stages (the detector's, under the async schedules).
    pub workers: Vec<WorkerReport>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PoolReport {
    pub size: usize,
    pub takes: u64,
    /// Takes that had to allocate because every buffer was in flight (0 in a healthy run).
    pub misses: u64,
}

impl RunReport {
    /// The human table printed at the end of every run.
    pub fn table(&self) -> String {
        let mut s = String::new();
        // A source that learns its size from the frames (a ROS 2 topic) reports none up front.
        let size = match (self.source.width, self.source.height) {
            (0, 0) => "size set by each frame".to_string(),
            (w, h) => format!("{w}x{h}"),
        };
        let _ = writeln!(
            s,
            "source: {} ({size}{}), budget {} ms, wall {:.2} s{}",
            self.source.name,
            self.source.fps.map(|f| format!(" @ {f} fps")).unwrap_or_default(),
            self.budget_ms,
            self.wall_s,
            if self.interrupted { " (interrupted)" } else { "" }
        );
        let _ = writeln!(
            s,
            "{:<12} {:>6} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>8} {:>6}",
            "stage", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "wait p50", "overrun", "late", "stale"
        );
        for st in &self.stages {
            let l = &st.latency;
            let _ = writeln!(
                s,
                "{:<12} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.2} {:>8} {:>8} {:>6}",
                st.name, l.n, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, st.queue_wait.p50_ms, st.overruns,
                st.deadline_drops, st.stale_drops
            );
        }
        for w in &self.workers {
            let l = &w.latency;
            let name = format!("{}:worker", w.name);
            let _ = writeln!(s, "{name:<12} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2}", l.n, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms);
        }
        let e = &self.end_to_end;
        let _ = writeln!(
            s,
            "{:<12} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            "end_to_end", e.n, e.p50_ms, e.p95_ms, e.p99_ms, e.max_ms
        );
        let _ = writeln!(
            s,
            "throughput: {:.2} frames/s published; deadline misses: {} ({} dropped late, {} published late)",
            self.fps,
            self.deadline_misses,
            self.frames.dropped(DropReason::Deadline),
            self.published_late
        );
        let drops: Vec<String> =
            DropReason::ALL.iter().map(|r| format!("{} {}", r, self.frames.dropped(*r))).collect();
        let _ = writeln!(
            s,
            "frames: captured {}, published {}, dropped {} ({})",
            self.frames.captured,
            self.frames.published,
            self.frames.dropped_total(),
            drops.join(", ")
        );
        let d = &self.detection;
        if d.fresh + d.predicted > 0 {
            let _ = writeln!(
                s,
                "published boxes: fresh {}, predicted {}, without detection {}; detection age p50 {} frames / {:.1} ms, p99 {} / {:.1} ms; late and unused {}",
                d.fresh, d.predicted, d.without, d.age_frames.p50, d.age_ms.p50_ms, d.age_frames.p99, d.age_ms.p99_ms, d.late_unused
            );
        }
        for w in &self.workers {
            let _ = writeln!(
                s,
                "{} worker: duty cycle {:.1} % ({} jobs, {} errors, busy {:.2} s)",
                w.name,
                w.duty_cycle * 100.0,
                w.jobs,
                w.errors,
                w.busy_s
            );
        }
        for st in self.stages.iter().filter(|s| !s.counters.is_empty()) {
            let c: Vec<String> = st.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "{}: {}", st.name, c.join(", "));
        }
        for (name, counters) in self.taps.iter().filter(|(_, c)| !c.is_empty()) {
            let c: Vec<String> = counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "{name}: {}", c.join(", "));
        }
        let _ = writeln!(s, "buffer pool: size {}, takes {}, misses {}", self.pool.size, self.pool.takes, self.pool.misses);
        for e in &self.output_errors {
            let _ = writeln!(s, "output error: {e}");
        }
        let _ = writeln!(s, "{}", self.frames.invariant_line());
        s
    }
}
