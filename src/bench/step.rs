//! One bench step: assemble the pipeline of a config, run it for a while (or until the source
//! ends) with the recording tap and the sampler, and summarise what happened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use perch_detect::eval::table::LatencyStats;
use perch_pipeline::{DropReason, RunReport};
use serde::Serialize;

use super::record::{RecordTap, Samples};
use super::sampler::{Sampled, Sampler};
use crate::assemble;
use crate::config::Config;

/// Latency percentiles of one stage over the step's published frames.
#[derive(Clone, Debug, Serialize)]
pub struct StageLatency {
    pub stage: String,
    pub latency_ms: Option<LatencyStats>,
}

/// What one step measured. Frame counts are the run report's (its ledger); latencies come from
/// the per-frame samples of the published frames.
#[derive(Debug, Serialize)]
pub struct Step {
    /// The input rate asked for (None: the source's own rate).
    pub rate_fps: Option<f64>,
    pub wall_s: f64,
    pub captured: u64,
    pub published: u64,
    /// Dropped for any reason but `shutdown` (frames in flight when the bench ended the step).
    pub dropped: u64,
    pub shutdown: u64,
    /// dropped / (captured - shutdown).
    pub drop_fraction: f64,
    /// Published frames per second of wall time.
    pub output_fps: f64,
    /// Published frames whose boxes come from a detection made on that frame (the rest carry the
    /// tracker's predictions from an earlier detection).
    pub fresh: u64,
    /// Detector results published (on their own frame or, with `async`/`auto`, on a later one):
    /// the detector's output rate is results / wall_s.
    pub detector_results: u64,
    pub end_to_end_ms: Option<LatencyStats>,
    pub stages: Vec<StageLatency>,
    /// Time between consecutive published frames.
    pub output_interval_ms: Option<LatencyStats>,
    /// Standard deviation of the output interval (ms).
    pub jitter_ms: Option<f64>,
    pub machine: Sampled,
    /// The run report the counts come from (schema perch.report/2).
    pub report: RunReport,
    #[serde(skip)]
    pub samples: Samples,
}

/// How a step ends: after `duration` (the source loops), or when the source ends.
pub struct StepPlan {
    pub duration: Option<Duration>,
    pub rate_fps: Option<f64>,
    pub sample_every: Duration,
    /// One slow reading (temperatures, clocks, energy) per this many samples.
    pub slow_every: u32,
}

pub fn run_step(cfg: &Config, plan: &StepPlan, interrupt: &Arc<AtomicBool>) -> anyhow::Result<Step> {
    let mut pipeline = assemble::assemble(cfg)?;
    let stamps = pipeline.stages.len() + 1;
    let expected = plan.duration.map_or(4096, |d| (d.as_secs_f64() * plan.rate_fps.unwrap_or(30.0) * 1.2) as usize + 64);
    let started = Instant::now();
    let (tap, slot) = RecordTap::new(started, stamps, expected);
    pipeline.taps.push(Box::new(tap));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = Sampler::start(started, plan.sample_every, plan.slow_every)?;
    let timer = {
        let (stop, interrupt, duration) = (stop.clone(), interrupt.clone(), plan.duration);
        std::thread::Builder::new().name("bench-timer".into()).spawn(move || loop {
            let over = duration.is_some_and(|d| started.elapsed() >= d);
            if over || interrupt.load(Ordering::Relaxed) {
                stop.store(true, Ordering::SeqCst);
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        })?
    };
    let report = pipeline.run(stop.clone());
    stop.store(true, Ordering::SeqCst);
    let _ = timer.join();
    let machine = sampler.finish()?;
    let report = report?;
    let rate_fps = plan.rate_fps.or(report.source.fps);
    let samples = slot.lock().ok().and_then(|mut s| s.take()).unwrap_or(Samples { stamps, data: Vec::new(), fresh: 0, results: 0 });
    Ok(summarise(report, samples, machine, rate_fps))
}

pub fn summarise(report: RunReport, samples: Samples, machine: Sampled, rate_fps: Option<f64>) -> Step {
    let f = &report.frames;
    let shutdown = f.dropped(DropReason::Shutdown);
    let dropped = f.dropped_total() - shutdown;
    let counted = f.captured.saturating_sub(shutdown);
    let n = samples.len();
    let e2e = LatencyStats::from_ms((0..n).map(|i| samples.end_to_end_ms(i)).collect());
    let stages = report
        .stages
        .iter()
        .enumerate()
        .take(samples.stamps)
        .map(|(slot, s)| StageLatency {
            stage: s.name.clone(),
            latency_ms: LatencyStats::from_ms((0..n).filter_map(|i| samples.stage_ms(i, slot)).collect()),
        })
        .collect();
    let intervals: Vec<f64> = (1..n).map(|i| (samples.published_s(i) - samples.published_s(i - 1)) * 1e3).collect();
    let jitter_ms = (intervals.len() >= 2).then(|| {
        let mean = intervals.iter().sum::<f64>() / intervals.len() as f64;
        (intervals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (intervals.len() - 1) as f64).sqrt()
    });
    Step {
        rate_fps,
        wall_s: report.wall_s,
        captured: f.captured,
        published: f.published,
        dropped,
        shutdown,
        drop_fraction: if counted > 0 { dropped as f64 / counted as f64 } else { 0.0 },
        output_fps: if report.wall_s > 0.0 { f.published as f64 / report.wall_s } else { 0.0 },
        fresh: samples.fresh,
        detector_results: samples.results,
        end_to_end_ms: e2e,
        stages,
        output_interval_ms: LatencyStats::from_ms(intervals),
        jitter_ms,
        machine,
        report,
        samples,
    }
}
