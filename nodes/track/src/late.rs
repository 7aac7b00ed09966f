//! Late detections done right: a detector result computed on frame `k` that arrives with frame
//! `n > k` is applied *at frame k*, and the tracks are carried forward to `n` again.
//!
//! Method: a short history of the tracker's full state (every track's Kalman mean and covariance,
//! lifecycle and ids), one snapshot per frame taken before the frame is processed. A late result
//! for `k` restores the snapshot of `k`, runs the normal `update` there (association against the
//! tracks *predicted to k*, where the objects were when the image was taken), then re-runs the
//! predictions of frames `k+1 .. n-1`, rewriting their snapshots, and the current frame goes on as
//! usual. This is retrodiction by re-processing rather than an out-of-sequence Kalman update
//! (Bar-Shalom's one-step OOSM filter): the OOSM update fixes a single filter's state, but the
//! association (which detection belongs to which track, which tracks are born or lost) must also
//! happen at frame k, against the states at k; re-processing gives exactly the result an on-time
//! detection would have given, for the filter and the lifecycle alike, at the cost of a few
//! predictions (microseconds) per late result. Snapshots reuse their buffers: no allocation in
//! steady state.
//!
//! A result older than the history, or older than a result already applied (the detector's
//! results arrive in order, so this only happens when something was dropped), is not used and is
//! counted as such.

use std::collections::VecDeque;
use std::time::Duration;

use perch_pipeline::DetectionAge;

use crate::tracker::{Det, TrackOut, Tracker, TrackerParams, TrackerState};

/// Tracks a history snapshot has room for before it grows.
pub const SNAPSHOT_TRACKS: usize = 32;

/// What a frame brings to the tracker.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// No detection result: predict.
    Coast,
    /// Detections computed on this frame.
    Fresh(&'a [Det]),
    /// Detections computed on the earlier frame `seq`, arriving now.
    Late { seq: u64, dets: &'a [Det] },
}

/// What became of a late result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LateOutcome {
    /// Applied at its own frame, `frames_back` frames before the current one.
    Applied { frames_back: u64 },
    /// Older than the history kept (or not an earlier frame at all).
    TooOld,
    /// A newer result was applied already.
    Superseded,
}

#[derive(Debug, Default)]
struct Entry {
    seq: u64,
    ts: Duration,
    /// A detection result was applied at this frame.
    updated: bool,
    /// The tracker's state before this frame was processed.
    before: TrackerState,
}

/// A [`Tracker`] that keeps `history` frames of state so late detections land at their frame.
#[derive(Debug)]
pub struct LateTracker {
    tracker: Tracker,
    history: usize,
    ring: VecDeque<Entry>,
    /// Entries not in the ring yet, their buffers allocated up front (see [`LateTracker::new`]).
    spare: Vec<Entry>,
    /// The newest frame whose detections were applied: (seq, source time).
    last_detection: Option<(u64, Duration)>,
    scratch: Vec<TrackOut>,
}

impl LateTracker {
    /// `history`: frames of state kept (a result older than this is not used); at least 1. The
    /// snapshots are allocated here, room for [`SNAPSHOT_TRACKS`] tracks each, so the frames
    /// that follow allocate nothing (a snapshot grows once if more tracks are held).
    pub fn new(params: TrackerParams, history: usize) -> Self {
        let history = history.max(1);
        let spare = (0..history).map(|_| Entry { before: TrackerState::with_capacity(SNAPSHOT_TRACKS), ..Entry::default() }).collect();
        Self {
            tracker: Tracker::new(params),
            history,
            ring: VecDeque::with_capacity(history),
            spare,
            last_detection: None,
            scratch: Vec::with_capacity(SNAPSHOT_TRACKS),
        }
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Forget all tracks and the state history (a new pixel grid: results computed on the old
    /// one cannot land any more), keeping the id counter so no id is reused.
    pub fn restart(&mut self) {
        self.tracker.restart();
        self.spare.extend(self.ring.drain(..));
        self.last_detection = None;
    }

    /// Process frame `seq` (source time `ts`; frames must come in increasing `seq`, gaps filled
    /// by the caller with [`Input::Coast`]) and write the published tracks into `out`.
    pub fn step(&mut self, seq: u64, ts: Duration, input: Input<'_>, out: &mut Vec<TrackOut>) -> Option<LateOutcome> {
        let mut late = None;
        let input = match input {
            Input::Late { seq: k, dets } => {
                let outcome = self.apply_late(k, dets);
                late = Some(outcome);
                Input::Coast
            }
            other => other,
        };
        self.push_entry(seq, ts, matches!(input, Input::Fresh(_)));
        match input {
            Input::Fresh(dets) => {
                self.tracker.update(dets, out);
                self.last_detection = Some((seq, ts));
            }
            _ => self.tracker.coast(out),
        }
        late
    }

    /// The age, seen from frame (`seq`, `ts`), of a detection `frames` frames older.
    pub fn age(&self, seq: u64, ts: Duration, frames: u32) -> DetectionAge {
        if frames == 0 {
            return DetectionAge::FRESH;
        }
        let then = seq.saturating_sub(frames as u64);
        let then_ts = match self.ring.binary_search_by_key(&then, |e| e.seq) {
            Ok(i) => self.ring[i].ts,
            // Older than the history: extrapolate with the history's mean frame period.
            Err(_) => ts.saturating_sub(self.mean_period().saturating_mul(frames)),
        };
        DetectionAge { frames, ms: ts.saturating_sub(then_ts).as_secs_f32() * 1000.0 }
    }

    /// The age of the newest detection applied so far, seen from frame (`seq`, `ts`).
    pub fn detection_age(&self, seq: u64, ts: Duration) -> Option<DetectionAge> {
        self.last_detection.map(|(s, t)| DetectionAge {
            frames: seq.saturating_sub(s).min(u32::MAX as u64) as u32,
            ms: ts.saturating_sub(t).as_secs_f32() * 1000.0,
        })
    }

    fn mean_period(&self) -> Duration {
        match (self.ring.front(), self.ring.back()) {
            (Some(a), Some(b)) if b.seq > a.seq => (b.ts.saturating_sub(a.ts)) / (b.seq - a.seq) as u32,
            _ => Duration::ZERO,
        }
    }

    fn push_entry(&mut self, seq: u64, ts: Duration, updated: bool) {
        let mut e = if self.ring.len() >= self.history { self.ring.pop_front() } else { self.spare.pop() }.unwrap_or_default();
        e.seq = seq;
        e.ts = ts;
        e.updated = updated;
        self.tracker.save(&mut e.before);
        self.ring.push_back(e);
    }

    fn apply_late(&mut self, k: u64, dets: &[Det]) -> LateOutcome {
        let Ok(i) = self.ring.binary_search_by_key(&k, |e| e.seq) else {
            return LateOutcome::TooOld;
        };
        if self.ring.iter().skip(i).any(|e| e.updated) {
            return LateOutcome::Superseded;
        }
        let frames_back = self.ring.back().map_or(0, |b| b.seq - k) + 1;
        // Back to frame k, as it was before k was processed; the detections land there.
        self.tracker.restore(&self.ring[i].before);
        self.tracker.update(dets, &mut self.scratch);
        self.ring[i].updated = true;
        self.last_detection = Some((k, self.ring[i].ts));
        // Forward again through the frames after k (they had no detections: they were predicted).
        for j in i + 1..self.ring.len() {
            self.tracker.save(&mut self.ring[j].before);
            self.tracker.coast(&mut self.scratch);
        }
        LateOutcome::Applied { frames_back }
    }
}
