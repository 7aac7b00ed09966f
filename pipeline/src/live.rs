//! Live statistics for observers that report while the pipeline runs (ROS 2 diagnostics, Rerun).
//! Stage threads fold their histograms in a few times per second: the per-frame path takes no lock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::ledger::{Ledger, LedgerSnapshot};
use crate::metrics::{new_histogram, LatencySummary};

/// How often a stage thread publishes its histogram.
pub const LIVE_REFRESH: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct LiveStats {
    /// `stage_names[0]` is `capture`, then the stages in order; index i matches `Frame::stamps[i]`.
    stage_names: Vec<String>,
    stages: Vec<Mutex<Histogram<u64>>>,
    end_to_end: Mutex<Histogram<u64>>,
    ledger: Arc<Ledger>,
    started: Instant,
}

/// A point-in-time view, cheap to compute once a second.
#[derive(Clone, Debug, Serialize)]
pub struct LiveSnapshot {
    pub uptime_s: f64,
    pub stages: Vec<(String, LatencySummary)>,
    pub end_to_end: LatencySummary,
    pub ledger: LedgerSnapshot,
    /// Published frames per second since the start.
    pub fps: f64,
}

impl LiveStats {
    pub fn new(stage_names: Vec<String>, ledger: Arc<Ledger>) -> Self {
        let stages = stage_names.iter().map(|_| Mutex::new(new_histogram())).collect();
        Self { stage_names, stages, end_to_end: Mutex::new(new_histogram()), ledger, started: Instant::now() }
    }

    pub fn stage_names(&self) -> &[String] {
        &self.stage_names
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Replace stage `index`'s live histogram with the thread's running one (no allocation: same bounds).
    pub fn publish_stage(&self, index: usize, hist: &Histogram<u64>) {
        if let Some(slot) = self.stages.get(index) {
            if let Ok(mut h) = slot.lock() {
                h.reset();
                let _ = h.add(hist);
            }
        }
    }

    pub fn publish_end_to_end(&self, hist: &Histogram<u64>) {
        if let Ok(mut h) = self.end_to_end.lock() {
            h.reset();
            let _ = h.add(hist);
        }
    }

    pub fn snapshot(&self) -> LiveSnapshot {
        let stages = self
            .stage_names
            .iter()
            .zip(&self.stages)
            .map(|(n, h)| (n.clone(), h.lock().map(|h| LatencySummary::from_histogram(&h)).unwrap_or_default()))
            .collect();
        let end_to_end = self.end_to_end.lock().map(|h| LatencySummary::from_histogram(&h)).unwrap_or_default();
        let ledger = self.ledger.snapshot();
        let uptime_s = self.started.elapsed().as_secs_f64();
        let fps = if uptime_s > 0.0 { ledger.published as f64 / uptime_s } else { 0.0 };
        LiveSnapshot { uptime_s, stages, end_to_end, ledger, fps }
    }
}
