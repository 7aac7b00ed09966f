//! ByteTrack and a SORT-style tracker over the same Kalman filter, lifecycle and assignment.
//!
//! ByteTrack follows Ultralytics' `BYTETracker` (parameters of its `bytetrack.yaml`):
//! 1. Tracked and lost tracks are predicted one frame forward (lost ones with zero height velocity).
//! 2. They are matched to the high-score detections (`score >= track_high_thresh`) on IoU
//!    distance, fused with the detection score when `fuse_score` (`1 - IoU * score`), keeping
//!    pairs with distance <= `match_thresh`. A matched lost track is re-found with its old id.
//! 3. Tracked tracks left over are matched to the low-score detections
//!    (`track_low_thresh < score < track_high_thresh`) on plain IoU distance <= 0.5; those still
//!    unmatched become lost.
//! 4. Tentative tracks (born last frame) are matched to the remaining high-score detections
//!    (distance <= 0.7): a match confirms them, no match removes them.
//! 5. Remaining high-score detections with `score >= new_track_thresh` start tentative tracks
//!    (confirmed at once on the first frame).
//! 6. Lost tracks not re-found for more than `track_buffer * frame_rate / 30` frames are removed;
//!    a tracked and a lost track that overlap almost entirely (IoU > 0.85) are deduplicated,
//!    keeping the older one.
//!
//! SORT here is the same machinery with one association stage: detections below
//! `track_high_thresh` are ignored, and the cost is plain IoU distance (no score fusion).
//!
//! Assignment minimises the summed distance of the pairs kept (what `lap.lapjv` with
//! `cost_limit` solves in the reference), exactly, on integer weights.
//!
//! Published ids are assigned when a track is confirmed, from 1 upwards, so they are dense
//! (the reference numbers tentative tracks too, leaving gaps); a re-found track keeps its id.

use crate::assign::{limit_weight, Assigner, Edge};
use crate::kalman::{xyah_from_xyxy, xyxy_from_mean, KalmanState};

/// Which tracker to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackerKind {
    #[default]
    Bytetrack,
    Sort,
}

impl TrackerKind {
    pub const ALL: [TrackerKind; 2] = [TrackerKind::Bytetrack, TrackerKind::Sort];

    /// The name used in configs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerKind::Bytetrack => "bytetrack",
            TrackerKind::Sort => "sort",
        }
    }

    /// The name people write in prose ("ByteTrack", "SORT").
    pub fn display_name(self) -> &'static str {
        match self {
            TrackerKind::Bytetrack => "ByteTrack",
            TrackerKind::Sort => "SORT",
        }
    }
}

impl std::str::FromStr for TrackerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown tracker '{s}' (accepted: bytetrack, sort)"))
    }
}

/// Tracker parameters, named as in Ultralytics' `bytetrack.yaml`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerParams {
    pub kind: TrackerKind,
    pub track_high_thresh: f64,
    pub track_low_thresh: f64,
    pub new_track_thresh: f64,
    pub track_buffer: u32,
    pub match_thresh: f64,
    pub fuse_score: bool,
    pub frame_rate: f64,
}

impl Default for TrackerParams {
    fn default() -> Self {
        Self {
            kind: TrackerKind::Bytetrack,
            track_high_thresh: 0.25,
            track_low_thresh: 0.1,
            new_track_thresh: 0.25,
            track_buffer: 30,
            match_thresh: 0.8,
            fuse_score: true,
            frame_rate: 30.0,
        }
    }
}

/// A detection given to the tracker: corners in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Det {
    pub xyxy: [f64; 4],
    pub score: f64,
    pub class_id: u32,
}

/// A published track.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackOut {
    /// Filtered box (the Kalman estimate), corners in pixels.
    pub xyxy: [f64; 4],
    /// Score of the detection that last updated the track.
    pub score: f64,
    /// Class of the detection that last updated the track.
    pub class_id: u32,
    pub track_id: u64,
    /// True when no detection was behind this box in this frame (coasting).
    pub predicted: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackState {
    /// Born from one detection, not yet confirmed by a second: never published.
    Tentative,
    /// Confirmed and matched in the latest frame with detections: published.
    Tracked,
    /// Confirmed but unmatched: kept for re-identification, not published.
    Lost,
}

#[derive(Clone, Debug)]
struct Track {
    kf: KalmanState,
    state: TrackState,
    /// Published id; 0 until confirmed.
    id: u64,
    score: f64,
    class_id: u32,
    /// Frame of the last detection matched to it.
    last_frame: u64,
    start_frame: u64,
}

impl Track {
    fn xyxy(&self) -> [f64; 4] {
        xyxy_from_mean(&self.kf.mean)
    }

    fn update(&mut self, det: &Det, frame: u64) {
        self.kf.update(xyah_from_xyxy(det.xyxy));
        self.score = det.score;
        self.class_id = det.class_id;
        self.last_frame = frame;
    }
}

/// IoU of two corner boxes (0 when disjoint or degenerate).
pub fn iou_xyxy(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    if inter <= 0.0 {
        return 0.0;
    }
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Reused per-frame buffers.
#[derive(Debug, Default)]
struct Scratch {
    assigner: Assigner,
    edges: Vec<Edge>,
    pairs: Vec<(usize, usize)>,
    boxes: Vec<[f64; 4]>,
    high: Vec<usize>,
    low: Vec<usize>,
    pool: Vec<usize>,
    unconfirmed: Vec<usize>,
    left_tracks: Vec<usize>,
    left_dets: Vec<usize>,
    matched: Vec<(usize, usize)>,
    sorted: Vec<(f64, usize)>,
    track_hit: Vec<bool>,
    det_hit: Vec<bool>,
    remove: Vec<bool>,
}

/// Match tracks `ti` (indices into `boxes`, the tracks' predicted boxes) with detections `di`
/// (indices into `dets`). Pairs kept have distance <= `thresh`; `out` gets `(track, det)` indices
/// into `tracks`/`dets`.
///
/// Only overlapping pairs can have a distance below 1, so candidates come from a sweep over the
/// detections sorted by left edge: a track sees the detections whose left edge lies in
/// `[track.x1 - widest detection, track.x2)`, not all of them.
#[allow(clippy::too_many_arguments)]
fn associate(
    boxes: &[[f64; 4]],
    ti: &[usize],
    dets: &[Det],
    di: &[usize],
    fuse: bool,
    thresh: f64,
    s_assigner: &mut Assigner,
    s_edges: &mut Vec<Edge>,
    s_pairs: &mut Vec<(usize, usize)>,
    s_sorted: &mut Vec<(f64, usize)>,
    out: &mut Vec<(usize, usize)>,
) {
    out.clear();
    if ti.is_empty() || di.is_empty() {
        return;
    }
    s_sorted.clear();
    let mut widest = 0.0f64;
    for (c, &d) in di.iter().enumerate() {
        let b = &dets[d].xyxy;
        s_sorted.push((b[0], c));
        widest = widest.max(b[2] - b[0]);
    }
    s_sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    s_edges.clear();
    for (r, &t) in ti.iter().enumerate() {
        let tb = &boxes[t];
        let lo = s_sorted.partition_point(|e| e.0 < tb[0] - widest);
        for &(x1, c) in &s_sorted[lo..] {
            if x1 >= tb[2] {
                break;
            }
            let det = &dets[di[c]];
            let iou = iou_xyxy(tb, &det.xyxy);
            if iou <= 0.0 {
                continue;
            }
            let sim = if fuse { iou * det.score } else { iou };
            if let Some(w) = limit_weight(1.0 - sim, thresh) {
                s_edges.push(Edge {
                    row: r,
                    col: c,
                    weight: w,
                });
            }
        }
    }
    s_assigner.max_weight_matching(ti.len(), di.len(), s_edges, s_pairs);
    out.extend(s_pairs.iter().map(|&(r, c)| (ti[r], di[c])));
}

/// A multi-object tracker (ByteTrack or SORT). Feed it every frame in order: `update` with the
/// frame's detections, or `coast` when the detector did not run on that frame.
#[derive(Debug)]
pub struct Tracker {
    params: TrackerParams,
    frame_id: u64,
    fresh_frames: u64,
    max_time_lost: u64,
    next_id: u64,
    tracks: Vec<Track>,
    s: Scratch,
}

impl Tracker {
    pub fn new(params: TrackerParams) -> Self {
        let max_time_lost = (params.frame_rate / 30.0 * params.track_buffer as f64) as u64;
        Self {
            params,
            frame_id: 0,
            fresh_frames: 0,
            max_time_lost,
            next_id: 1,
            tracks: Vec::new(),
            s: Scratch::default(),
        }
    }

    pub fn params(&self) -> &TrackerParams {
        &self.params
    }

    /// Number of tracks held (tentative, tracked and lost).
    pub fn num_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Forget all tracks; ids start again at 1.
    pub fn reset(&mut self) {
        *self = Self::new(self.params);
    }

    fn predict_pool(&mut self) {
        for t in self
            .tracks
            .iter_mut()
            .filter(|t| t.state != TrackState::Tentative)
        {
            if t.state == TrackState::Lost {
                t.kf.mean[7] = 0.0;
            }
            t.kf.predict();
        }
    }

    fn publish(&self, predicted: bool, out: &mut Vec<TrackOut>) {
        out.clear();
        out.extend(
            self.tracks
                .iter()
                .filter(|t| t.state == TrackState::Tracked)
                .map(|t| TrackOut {
                    xyxy: t.xyxy(),
                    score: t.score,
                    class_id: t.class_id,
                    track_id: t.id,
                    predicted,
                }),
        );
    }

    fn remove_stale_lost(&mut self) {
        let (frame, max_lost) = (self.frame_id, self.max_time_lost);
        self.tracks
            .retain(|t| !(t.state == TrackState::Lost && frame - t.last_frame > max_lost));
    }

    /// A frame without fresh detections: predict every confirmed track one frame forward and
    /// publish the tracked ones as predictions. Lost tracks age as usual.
    pub fn coast(&mut self, out: &mut Vec<TrackOut>) {
        self.frame_id += 1;
        self.predict_pool();
        self.remove_stale_lost();
        self.publish(true, out);
    }

    /// A frame with fresh detections (possibly none): associate, update the lifecycle, and write
    /// the published tracks (confirmed, matched in this frame) into `out`.
    pub fn update(&mut self, dets: &[Det], out: &mut Vec<TrackOut>) {
        self.frame_id += 1;
        self.fresh_frames += 1;
        let frame = self.frame_id;
        let p = self.params;
        let bytetrack = p.kind == TrackerKind::Bytetrack;
        let fuse = bytetrack && p.fuse_score;

        // Detections by tier; boxes with no area or non-finite numbers are ignored.
        self.s.high.clear();
        self.s.low.clear();
        for (i, d) in dets.iter().enumerate() {
            let b = d.xyxy;
            let valid = b.iter().all(|v| v.is_finite())
                && b[2] > b[0]
                && b[3] > b[1]
                && d.score.is_finite();
            if !valid {
                continue;
            }
            if d.score >= p.track_high_thresh {
                self.s.high.push(i);
            } else if bytetrack && d.score > p.track_low_thresh {
                self.s.low.push(i);
            }
        }

        self.predict_pool();
        self.s.boxes.clear();
        self.s.boxes.extend(self.tracks.iter().map(|t| t.xyxy()));
        self.s.pool.clear();
        self.s.unconfirmed.clear();
        for (k, t) in self.tracks.iter().enumerate() {
            match t.state {
                TrackState::Tentative => self.s.unconfirmed.push(k),
                _ => self.s.pool.push(k),
            }
        }
        let s = &mut self.s;

        // First association: confirmed (tracked + lost) tracks with high-score detections.
        s.track_hit.clear();
        s.track_hit.resize(self.tracks.len(), false);
        s.det_hit.clear();
        s.det_hit.resize(dets.len(), false);
        associate(
            &s.boxes,
            &s.pool,
            dets,
            &s.high,
            fuse,
            p.match_thresh,
            &mut s.assigner,
            &mut s.edges,
            &mut s.pairs,
            &mut s.sorted,
            &mut s.matched,
        );
        for &(k, d) in &s.matched {
            self.tracks[k].update(&dets[d], frame);
            self.tracks[k].state = TrackState::Tracked; // a lost track is re-found with its id
            s.track_hit[k] = true;
            s.det_hit[d] = true;
        }
        // Second association (ByteTrack): tracks tracked until now, left over, with low-score
        // detections. Tracks re-found above are excluded by `track_hit`.
        s.left_tracks.clear();
        for &k in &s.pool {
            if !s.track_hit[k] && self.tracks[k].state == TrackState::Tracked {
                s.left_tracks.push(k);
            }
        }
        associate(
            &s.boxes,
            &s.left_tracks,
            dets,
            &s.low,
            false,
            0.5,
            &mut s.assigner,
            &mut s.edges,
            &mut s.pairs,
            &mut s.sorted,
            &mut s.matched,
        );
        for &(k, d) in &s.matched {
            self.tracks[k].update(&dets[d], frame);
            s.track_hit[k] = true;
        }
        for &k in &s.left_tracks {
            if !s.track_hit[k] {
                self.tracks[k].state = TrackState::Lost;
            }
        }
        // Tentative tracks with the high-score detections nobody took: confirm or remove.
        s.left_dets.clear();
        s.left_dets
            .extend(s.high.iter().copied().filter(|&d| !s.det_hit[d]));
        associate(
            &s.boxes,
            &s.unconfirmed,
            dets,
            &s.left_dets,
            fuse,
            0.7,
            &mut s.assigner,
            &mut s.edges,
            &mut s.pairs,
            &mut s.sorted,
            &mut s.matched,
        );
        s.remove.clear();
        s.remove.resize(self.tracks.len(), false);
        for &(k, d) in &s.matched {
            let t = &mut self.tracks[k];
            t.update(&dets[d], frame);
            t.state = TrackState::Tracked;
            t.id = self.next_id;
            self.next_id += 1;
            s.track_hit[k] = true;
            s.det_hit[d] = true;
        }
        for &k in &s.unconfirmed {
            if !s.track_hit[k] {
                s.remove[k] = true;
            }
        }
        // New tracks from what is left (confirmed at once on the first frame).
        let first = self.fresh_frames == 1;
        for &d in &s.left_dets {
            let det = &dets[d];
            if s.det_hit[d] || det.score < p.new_track_thresh {
                continue;
            }
            let mut t = Track {
                kf: KalmanState::initiate(xyah_from_xyxy(det.xyxy)),
                state: TrackState::Tentative,
                id: 0,
                score: det.score,
                class_id: det.class_id,
                last_frame: frame,
                start_frame: frame,
            };
            if first {
                t.state = TrackState::Tracked;
                t.id = self.next_id;
                self.next_id += 1;
            }
            self.tracks.push(t);
            s.remove.push(false);
        }
        // Lost for too long.
        for (k, t) in self.tracks.iter().enumerate() {
            if t.state == TrackState::Lost && frame - t.last_frame > self.max_time_lost {
                s.remove[k] = true;
            }
        }
        // A live track and a lost one on top of each other (IoU > 0.85): keep the one that has
        // been tracked longer.
        s.boxes.clear();
        s.boxes.extend(self.tracks.iter().map(|t| t.xyxy()));
        s.pool.clear(); // reused: the lost tracks still kept
        s.pool.extend(
            (0..self.tracks.len())
                .filter(|&k| !s.remove[k] && self.tracks[k].state == TrackState::Lost),
        );
        if !s.pool.is_empty() {
            let mut dup = std::mem::take(&mut s.track_hit);
            dup.clear();
            dup.resize(self.tracks.len(), false);
            for a in 0..self.tracks.len() {
                if s.remove[a] || self.tracks[a].state == TrackState::Lost {
                    continue;
                }
                for &b in &s.pool {
                    if 1.0 - iou_xyxy(&s.boxes[a], &s.boxes[b]) < 0.15 {
                        let (ta, tb) = (&self.tracks[a], &self.tracks[b]);
                        if ta.last_frame - ta.start_frame > tb.last_frame - tb.start_frame {
                            dup[b] = true;
                        } else {
                            dup[a] = true;
                        }
                    }
                }
            }
            for (r, d) in s.remove.iter_mut().zip(&dup) {
                *r |= *d;
            }
            s.track_hit = dup;
        }
        let mut k = 0;
        let remove = &s.remove;
        self.tracks.retain(|_| {
            k += 1;
            !remove[k - 1]
        });
        self.publish(false, out);
    }
}
