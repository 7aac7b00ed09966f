//! `perch bench pipeline`: NVIDIA ros2_benchmark's method on the whole pipeline. The config's
//! replay is paced at increasing input rates (a list, or a search: doubling until a step drops
//! too many frames, then bisecting), each rate for a fixed time with the source looping; the
//! answer is the highest input rate that drops fewer than `max_drop` of its frames, and that
//! step's latencies, jitter, CPU time per thread, memory and energy.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use perch_capture::SourceKind;
use serde::Serialize;

use super::step::{run_step, Step, StepPlan};
use super::Header;
use crate::config::Config;

pub const SCHEMA: &str = "perch.bench_pipeline/1";

pub struct SweepPlan {
    /// Explicit rates, in order; empty: search.
    pub rates: Vec<f64>,
    pub start_fps: f64,
    pub max_fps: f64,
    /// Bisection steps after the bracket is found.
    pub refine: u32,
    pub step: Duration,
    pub max_drop: f64,
}

#[derive(Serialize)]
pub struct PipelineBench {
    #[serde(flatten)]
    pub header: Header,
    pub max_drop_fraction: f64,
    pub step_s: f64,
    /// Every step in the order run (rate, counts, drop fraction, latency summary).
    pub steps: Vec<Step>,
    /// The highest rate whose drop fraction stayed under the limit (None: even the lowest failed).
    pub peak_rate_fps: Option<f64>,
    /// Index into `steps` of that rate's step.
    pub peak_step: Option<usize>,
    /// The search reached `max_fps` without failing: the peak is at least this, not found.
    pub capped: bool,
}

/// Run the sweep; `on_step` sees every finished step (progress output).
pub fn sweep(cfg: &Config, plan: &SweepPlan, header: Header, interrupt: &Arc<AtomicBool>, on_step: &mut dyn FnMut(&Step)) -> anyhow::Result<PipelineBench> {
    if cfg.source.kind != SourceKind::Replay {
        bail!(
            "perch bench pipeline paces a replay at increasing rates; [source] kind is {:?}: use a config whose source is a folder of frames (e.g. configs/replay.toml)",
            cfg.source.kind
        );
    }
    if !(plan.max_drop > 0.0 && plan.max_drop < 1.0) {
        bail!("--max-drop must be between 0 and 1 (a fraction), got {}", plan.max_drop);
    }
    if plan.rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) || !(plan.start_fps > 0.0 && plan.max_fps >= plan.start_fps) {
        bail!("--rates/--start-fps/--max-fps must be positive frame rates (start <= max)");
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut run = |rate: f64, steps: &mut Vec<Step>| -> anyhow::Result<bool> {
        let mut c = cfg.clone();
        c.source.pacing = perch_capture::Pacing::Realtime;
        c.source.fps = Some(rate);
        c.source.looping = true;
        let s = run_step(&c, &StepPlan { duration: Some(plan.step), rate_fps: Some(rate), sample_every: Duration::from_millis(250), slow_every: 4 }, interrupt)?;
        anyhow::ensure!(s.report.invariant_ok, "frame accounting does not balance at {rate} fps");
        let ok = s.drop_fraction < plan.max_drop;
        on_step(&s);
        steps.push(s);
        Ok(ok)
    };
    let interrupted = || interrupt.load(std::sync::atomic::Ordering::Relaxed);
    let mut capped = false;
    if plan.rates.is_empty() {
        let (mut good, mut bad): (Option<f64>, Option<f64>) = (None, None);
        let mut r = plan.start_fps;
        while !interrupted() {
            if run(r, &mut steps)? {
                good = Some(r);
                if r >= plan.max_fps {
                    capped = true;
                    break;
                }
                r = (r * 2.0).min(plan.max_fps);
            } else {
                bad = Some(r);
                break;
            }
        }
        if let (Some(mut lo), Some(mut hi)) = (good, bad) {
            for _ in 0..plan.refine {
                if interrupted() {
                    break;
                }
                let mid = ((lo + hi) / 2.0 * 10.0).round() / 10.0;
                if mid <= lo || mid >= hi {
                    break;
                }
                if run(mid, &mut steps)? {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
        }
    } else {
        for &r in &plan.rates {
            if interrupted() {
                break;
            }
            run(r, &mut steps)?;
        }
    }
    let peak_step = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.drop_fraction < plan.max_drop)
        .max_by(|a, b| a.1.rate_fps.unwrap_or(0.0).total_cmp(&b.1.rate_fps.unwrap_or(0.0)))
        .map(|(i, _)| i);
    Ok(PipelineBench {
        header,
        max_drop_fraction: plan.max_drop,
        step_s: plan.step.as_secs_f64(),
        peak_rate_fps: peak_step.and_then(|i| steps[i].rate_fps),
        peak_step,
        capped,
        steps,
    })
}
