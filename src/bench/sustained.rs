//! `perch bench sustained`: one steady run of the config (the replay looping at its rate) for N
//! minutes, cut into windows: throughput and latency per window, with the CPU clocks,
//! temperatures and energy of the same window, the energy per published frame, and the first
//! against the last window (throttling shows as the last one slower).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use perch_capture::SourceKind;
use perch_detect::eval::table::LatencyStats;
use serde::Serialize;

use super::step::{run_step, Step, StepPlan};
use super::Header;
use crate::config::Config;

pub const SCHEMA: &str = "perch.bench_sustained/1";

#[derive(Debug, Serialize)]
pub struct Window {
    pub from_s: f64,
    pub to_s: f64,
    pub published: u64,
    pub output_fps: f64,
    pub fresh: u64,
    /// Frames that brought a new detector result (fresh or late).
    pub detector_results: u64,
    pub end_to_end_ms: Option<LatencyStats>,
    /// Highest temperature of any zone in the window, and which (°C).
    pub max_temp: Option<(String, f64)>,
    /// Mean of every CPU's current clock over the window's readings (MHz).
    pub mean_cpu_mhz: Option<f64>,
    /// Energy of the meter's total in the window (J), and per published frame (mJ).
    pub energy_j: Option<f64>,
    pub energy_per_frame_mj: Option<f64>,
}

#[derive(Serialize)]
pub struct SustainedBench {
    #[serde(flatten)]
    pub header: Header,
    pub minutes: f64,
    pub window_s: f64,
    pub rate_fps: Option<f64>,
    pub windows: Vec<Window>,
    /// last window's output fps / first window's (< 1: slower at the end).
    pub last_over_first: Option<f64>,
    /// Whole run: the meter's energy / published frames (mJ); None: energy not available here.
    pub energy_per_frame_mj: Option<f64>,
    pub mean_power_w: Option<f64>,
    pub step: Step,
}

pub fn sustained(cfg: &Config, minutes: f64, window_s: f64, rate: Option<f64>, header: Header, interrupt: &Arc<AtomicBool>) -> anyhow::Result<SustainedBench> {
    anyhow::ensure!(minutes > 0.0 && minutes.is_finite(), "--minutes must be a positive number, got {minutes}");
    anyhow::ensure!(window_s >= 1.0 && window_s.is_finite(), "--window-s must be at least 1, got {window_s}");
    let mut c = cfg.clone();
    if c.source.kind == SourceKind::Replay {
        c.source.looping = true;
        c.source.pacing = perch_capture::Pacing::Realtime;
    }
    if let Some(r) = rate {
        c.source.fps = Some(r);
    }
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let step = run_step(&c, &StepPlan { duration: Some(duration), rate_fps: rate.or(c.source.fps), sample_every: Duration::from_millis(250), slow_every: 4 }, interrupt)?;
    let windows = windows(&step, window_s);
    let last_over_first = match (windows.first(), windows.last()) {
        (Some(f), Some(l)) if windows.len() >= 2 && f.output_fps > 0.0 => Some(l.output_fps / f.output_fps),
        _ => None,
    };
    let total = step.machine.energy_total.as_ref().map(|(_, j)| *j);
    Ok(SustainedBench {
        header,
        minutes,
        window_s,
        rate_fps: step.rate_fps,
        energy_per_frame_mj: total.filter(|_| step.published > 0).map(|j| j * 1e3 / step.published as f64),
        mean_power_w: total.filter(|_| step.machine.window_s > 0.0).map(|j| j / step.machine.window_s),
        last_over_first,
        windows,
        step,
    })
}

/// Cut the step into whole windows of `window_s` (a last partial window shorter than half a
/// window is left out: its rate would mislead).
pub fn windows(step: &Step, window_s: f64) -> Vec<Window> {
    let s = &step.samples;
    let mut out = Vec::new();
    let mut from = 0.0;
    while from + window_s * 0.5 <= step.wall_s {
        let to = (from + window_s).min(step.wall_s);
        let idx: Vec<usize> = s.window(from, to).collect();
        let fresh = idx.iter().filter(|&&i| s.fresh(i)).count() as u64;
        let detector_results = idx.iter().filter(|&&i| s.new_result(i)).count() as u64;
        let readings: Vec<_> = step.machine.readings.iter().filter(|r| (from..=to).contains(&r.t_s)).collect();
        let max_temp = readings
            .iter()
            .flat_map(|r| r.temps_c.iter())
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(k, v)| (k.clone(), *v));
        let mhz: Vec<f64> = readings.iter().flat_map(|r| r.cpu_mhz.iter().flatten().copied()).collect();
        let energy = |r: Option<&&super::sampler::Reading>| r.and_then(|r| r.energy_j);
        let energy_j = match (energy(readings.first()), energy(readings.last())) {
            (Some(a), Some(b)) if readings.len() >= 2 => Some(b - a),
            _ => None,
        };
        let published = idx.len() as u64;
        out.push(Window {
            from_s: from,
            to_s: to,
            published,
            output_fps: published as f64 / (to - from),
            fresh,
            detector_results,
            end_to_end_ms: LatencyStats::from_ms(idx.iter().map(|&i| s.end_to_end_ms(i)).collect()),
            max_temp,
            mean_cpu_mhz: (!mhz.is_empty()).then(|| mhz.iter().sum::<f64>() / mhz.len() as f64),
            energy_per_frame_mj: energy_j.filter(|_| published > 0).map(|j| j * 1e3 / published as f64),
            energy_j,
        });
        from = to;
    }
    out
}
