//! A detector of a given latency on a live camera, simulated on detections stored per frame, and
//! the three ways of publishing its results that `perch eval track --detector-ms` compares.
//!
//! Frame `i` is captured at `i / fps`. A detector run takes `latency_ms` (plus optional seeded
//! Gaussian jitter, at least 1 ms). The schedules follow the runtime exactly:
//!
//! - [`Publish::DetectedOnly`]: perch's `every_frame` schedule on a live source (the detector's
//!   input keeps only the newest frame): when the detector is free it takes the newest frame
//!   captured by then (or waits for the next one); only the frames it ran on are published, with
//!   their own, correct detections. The tracker predicts silently through the frames in between.
//! - [`Publish::AsIfCurrent`]: the `async` schedule, its results applied to the frame they arrive
//!   with as if they had been computed on it (what a pipeline without late handling does).
//! - [`Publish::AtTheirFrame`]: the `async` schedule with perch's late handling
//!   ([`crate::late::LateTracker`]): each result is applied at the frame it was computed on.
//!
//! Under `async` a run starts on frame `k`; its result is ready at `t_k + latency` and joins the
//! first frame `m` captured at or after that, where the next run starts on `m`. Every frame is
//! published under both `async` variants (predicted boxes between results).

use std::collections::BTreeMap;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::corrupt::normal;
use crate::late::{Input, LateTracker};
use crate::mot::MotRow;
use crate::tracker::{Det, TrackOut, Tracker, TrackerParams};

/// A simulated detector.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorSim {
    /// Time per run, milliseconds.
    pub latency_ms: f64,
    /// Standard deviation of a run's time around `latency_ms` (0: every run takes exactly that).
    pub jitter_ms: f64,
    /// Camera frame rate.
    pub fps: f64,
    /// Seed of the jitter.
    pub seed: u64,
}

impl DetectorSim {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.latency_ms.is_finite() && self.latency_ms > 0.0 && self.latency_ms <= 60_000.0,
            "--detector-ms {}: must be a latency in (0, 60000] milliseconds",
            self.latency_ms
        );
        anyhow::ensure!(
            self.jitter_ms.is_finite() && self.jitter_ms >= 0.0,
            "--detector-jitter-ms {}: must be >= 0",
            self.jitter_ms
        );
        anyhow::ensure!(self.fps.is_finite() && self.fps > 0.0, "--fps {}: must be > 0 frames per second", self.fps);
        Ok(())
    }
}

/// How the detector's results reach the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Publish {
    /// Today's `every_frame` on a live source: only detected frames are published.
    DetectedOnly,
    /// `async`, late results applied as if current.
    AsIfCurrent,
    /// `async`, late results applied at their own frame (perch).
    AtTheirFrame,
}

impl Publish {
    pub const ALL: [Publish; 3] = [Publish::DetectedOnly, Publish::AsIfCurrent, Publish::AtTheirFrame];

    pub fn describe(self) -> &'static str {
        match self {
            Publish::DetectedOnly => "every_frame: publish only detected frames",
            Publish::AsIfCurrent => "async, late boxes applied as if current",
            Publish::AtTheirFrame => "async, late boxes applied at their frame (perch)",
        }
    }
}

/// What a simulated run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    pub frames: u64,
    pub detector_runs: u64,
    pub published_frames: u64,
    /// Mean frames between the frame a result was computed on and the frame it reached the output with.
    pub mean_result_delay_frames: f64,
}

/// Frame `i`'s capture time.
fn t(i: i64, first: i64, fps: f64) -> f64 {
    (i - first) as f64 / fps
}

/// Run `publish` over frames `first..=last` of `dets` (MOT rows, `conf` = score); returns the
/// published tracks as MOT rows (score of the last detection behind each box).
pub fn simulate(
    dets: &[MotRow],
    params: TrackerParams,
    history: usize,
    first: i64,
    last: i64,
    sim: &DetectorSim,
    publish: Publish,
) -> (Vec<MotRow>, SimStats) {
    let mut by_frame: BTreeMap<i64, Vec<Det>> = BTreeMap::new();
    for r in dets {
        let [l, t, w, h] = r.bbox;
        by_frame.entry(r.frame).or_default().push(Det { xyxy: [l, t, l + w, t + h], score: r.conf, class_id: 0 });
    }
    let frame_dets = |f: i64| by_frame.get(&f).map(|v| v.as_slice()).unwrap_or(&[]);
    let mut rng = ChaCha8Rng::seed_from_u64(sim.seed ^ 0x5eed_de7e_c70e);
    let mut run_time = || (sim.latency_ms + sim.jitter_ms * normal(&mut rng)).max(1.0) / 1000.0;
    let mut stats = SimStats { frames: (last - first + 1).max(0) as u64, ..Default::default() };
    let mut rows = Vec::new();
    let mut out: Vec<TrackOut> = Vec::new();
    let (mut delay_sum, mut arrivals) = (0u64, 0u64);
    let emit = |rows: &mut Vec<MotRow>, frame: i64, out: &[TrackOut]| {
        rows.extend(out.iter().map(|t| MotRow {
            frame,
            id: t.track_id as i64,
            bbox: [t.xyxy[0], t.xyxy[1], t.xyxy[2] - t.xyxy[0], t.xyxy[3] - t.xyxy[1]],
            conf: t.score,
            col8: None,
            col9: None,
        }));
    };
    match publish {
        Publish::DetectedOnly => {
            let mut tracker = Tracker::new(params);
            let mut k = first;
            let mut prev: Option<i64> = None;
            while k <= last {
                // Predict silently through the frames the detector never saw.
                for _ in 0..prev.map_or(0, |p| k - p - 1) {
                    tracker.coast(&mut out);
                }
                tracker.update(frame_dets(k), &mut out);
                emit(&mut rows, k, &out);
                stats.detector_runs += 1;
                stats.published_frames += 1;
                prev = Some(k);
                // Free at `done`: the newest frame captured by then, or the next one.
                let done = t(k, first, sim.fps) + run_time();
                let newest = first + (done * sim.fps + 1e-9).floor() as i64;
                k = newest.max(k + 1);
            }
        }
        Publish::AsIfCurrent | Publish::AtTheirFrame => {
            let mut late = LateTracker::new(params, history);
            let mut in_flight: Option<(i64, f64)> = None;
            for i in first..=last {
                let now = t(i, first, sim.fps);
                let mut arrived = None;
                if let Some((k, ready)) = in_flight {
                    if now + 1e-9 >= ready {
                        arrived = Some(k);
                        in_flight = None;
                        delay_sum += (i - k) as u64;
                        arrivals += 1;
                    }
                }
                if in_flight.is_none() {
                    in_flight = Some((i, now + run_time()));
                    stats.detector_runs += 1;
                }
                let input = match (arrived, publish) {
                    (None, _) => Input::Coast,
                    (Some(k), Publish::AtTheirFrame) => Input::Late { seq: (k - first) as u64, dets: frame_dets(k) },
                    (Some(k), _) => Input::Fresh(frame_dets(k)),
                };
                let ts = Duration::from_secs_f64(now);
                late.step((i - first) as u64, ts, input, &mut out);
                emit(&mut rows, i, &out);
                stats.published_frames += 1;
            }
        }
    }
    stats.mean_result_delay_frames = if arrivals > 0 { delay_sum as f64 / arrivals as f64 } else { 0.0 };
    (rows, stats)
}
