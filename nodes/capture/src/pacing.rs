//! When a replayed frame is due.

use std::sync::Arc;
use std::time::{Duration, Instant};

use perch_pipeline::Clock;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pacing {
    /// Deliver frame k at `start + k / fps`, as a camera would, whether or not the pipeline keeps up.
    #[default]
    Realtime,
    /// Deliver the next frame as soon as the pipeline has room for it.
    Max,
}

/// Holds the replay to the recorded frame rate on an injectable clock.
pub struct Pacer {
    pacing: Pacing,
    period: Duration,
    clock: Arc<dyn Clock>,
    start: Option<Instant>,
    delivered: u64,
}

impl Pacer {
    pub fn new(pacing: Pacing, fps: f64, clock: Arc<dyn Clock>) -> Self {
        let period = Duration::from_secs_f64(1.0 / fps.max(1e-6));
        Self { pacing, period, clock, start: None, delivered: 0 }
    }

    /// Block until the next frame is due (realtime); returns the frame's stream timestamp.
    /// Frames are due on a fixed grid from the first one, so a slow decode does not shift the
    /// schedule (no drift), and a late frame is delivered at once rather than skipped.
    pub fn wait_next(&mut self) -> Duration {
        let ts = self.period * self.delivered as u32;
        if self.pacing == Pacing::Realtime {
            let start = *self.start.get_or_insert_with(|| self.clock.now());
            self.clock.sleep_until(start + ts);
        }
        self.delivered += 1;
        ts
    }

    pub fn period(&self) -> Duration {
        self.period
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_pipeline::VirtualClock;

    #[test]
    fn realtime_delivers_on_the_frame_grid_without_drift() {
        let clock = Arc::new(VirtualClock::default());
        let mut pacer = Pacer::new(Pacing::Realtime, 10.0, clock.clone());
        let mut due = Vec::new();
        for k in 0..5u64 {
            let ts = pacer.wait_next();
            assert_eq!(ts, Duration::from_millis(100 * k));
            due.push(clock.elapsed());
            // Simulated decode time smaller than the period must not shift later frames.
            clock.advance(Duration::from_millis(30));
        }
        let ms: Vec<u128> = due.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 100, 200, 300, 400]);
    }

    #[test]
    fn late_frames_go_out_at_once_and_the_grid_holds() {
        let clock = Arc::new(VirtualClock::default());
        let mut pacer = Pacer::new(Pacing::Realtime, 10.0, clock.clone());
        pacer.wait_next();
        clock.advance(Duration::from_millis(250)); // a stall longer than two periods
        pacer.wait_next();
        assert_eq!(clock.elapsed().as_millis(), 250, "frame 1 was due at 100 ms: no wait");
        pacer.wait_next();
        assert_eq!(clock.elapsed().as_millis(), 250, "frame 2 was due at 200 ms: no wait");
        pacer.wait_next();
        assert_eq!(clock.elapsed().as_millis(), 300, "frame 3 is due at 300 ms");
    }

    #[test]
    fn max_pacing_never_waits() {
        let clock = Arc::new(VirtualClock::default());
        let mut pacer = Pacer::new(Pacing::Max, 10.0, clock.clone());
        for _ in 0..10 {
            pacer.wait_next();
        }
        assert_eq!(clock.elapsed(), Duration::ZERO);
    }
}
