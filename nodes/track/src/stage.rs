//! The pipeline stage: runs the tracker on each frame's detections and replaces them with tracks.

use anyhow::bail;
use perch_pipeline::{BBox, Detection, Flow, Frame, Stage, StartContext};
use serde::{Deserialize, Serialize};

use crate::tracker::{Det, TrackOut, Tracker, TrackerKind, TrackerParams};

/// `[track]` in the pipeline config. Names and defaults are those of Ultralytics' `bytetrack.yaml`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackConfig {
    /// `bytetrack` (default) or `sort`.
    pub tracker: TrackerKind,
    /// Detections scoring at least this take part in the first association and may start tracks.
    pub track_high_thresh: f64,
    /// ByteTrack only: detections scoring above this (and below `track_high_thresh`) may continue
    /// existing tracks in the second association. Lower ones are ignored.
    pub track_low_thresh: f64,
    /// An unmatched high-score detection starts a track only if it scores at least this.
    pub new_track_thresh: f64,
    /// Frames (at 30 fps; scaled by `frame_rate / 30`) a lost track is kept for re-identification.
    pub track_buffer: u32,
    /// Largest association distance (1 - IoU, or 1 - IoU * score with `fuse_score`) of a pair.
    pub match_thresh: f64,
    /// ByteTrack only: weigh IoU by the detection score in the first association.
    pub fuse_score: bool,
    /// Frame rate the tracker assumes; unset = the source's nominal rate, or 30 if unknown.
    pub frame_rate: Option<f64>,
}

impl Default for TrackConfig {
    fn default() -> Self {
        let p = TrackerParams::default();
        Self {
            tracker: p.kind,
            track_high_thresh: p.track_high_thresh,
            track_low_thresh: p.track_low_thresh,
            new_track_thresh: p.new_track_thresh,
            track_buffer: p.track_buffer,
            match_thresh: p.match_thresh,
            fuse_score: p.fuse_score,
            frame_rate: None,
        }
    }
}

impl TrackConfig {
    /// Check the values and turn them into tracker parameters (`fallback_fps` when `frame_rate` is unset).
    pub fn params(&self, fallback_fps: Option<f64>) -> anyhow::Result<TrackerParams> {
        for (key, v) in [
            ("track_high_thresh", self.track_high_thresh),
            ("track_low_thresh", self.track_low_thresh),
            ("new_track_thresh", self.new_track_thresh),
        ] {
            if !(0.0..=1.0).contains(&v) {
                bail!("track.{key} = {v}: must be a score between 0 and 1");
            }
        }
        if self.track_low_thresh > self.track_high_thresh {
            bail!(
                "track.track_low_thresh = {} must not exceed track.track_high_thresh = {}",
                self.track_low_thresh,
                self.track_high_thresh
            );
        }
        if !(self.match_thresh > 0.0 && self.match_thresh <= 1.0) {
            bail!(
                "track.match_thresh = {}: must be a distance in (0, 1] (1 - IoU)",
                self.match_thresh
            );
        }
        let frame_rate = match self.frame_rate {
            Some(f) if !(f.is_finite() && (0.001..=10_000.0).contains(&f)) => {
                bail!("track.frame_rate = {f}: must be a frame rate from 0.001 to 10000 frames per second")
            }
            Some(f) => f,
            None => fallback_fps
                .filter(|f| f.is_finite() && *f > 0.0)
                .unwrap_or(30.0),
        };
        Ok(TrackerParams {
            kind: self.tracker,
            track_high_thresh: self.track_high_thresh,
            track_low_thresh: self.track_low_thresh,
            new_track_thresh: self.new_track_thresh,
            track_buffer: self.track_buffer,
            match_thresh: self.match_thresh,
            fuse_score: self.fuse_score,
            frame_rate,
        })
    }
}

/// The `track` stage. Frames with `detections_fresh` update the tracker; frames without
/// (the detector skipped them) coast: tracks are predicted and published with `predicted = true`.
/// Frames that never reached this stage (dropped upstream: a gap in `seq`) are predicted through
/// silently so the motion model keeps real time.
///
/// A frame of another size than the one before (a replay folder of mixed resolutions, a camera
/// that renegotiated its mode) restarts the tracker: boxes of two pixel grids cannot be associated,
/// and without the restart ByteTrack held every new detection as tentative and published 0 tracks.
/// Ids keep counting (never reused); the first change is logged, all are counted.
pub struct TrackStage {
    config: TrackConfig,
    tracker: Tracker,
    dets: Vec<Det>,
    out: Vec<TrackOut>,
    last_seq: Option<u64>,
    fresh_frames: u64,
    coasted_frames: u64,
    gap_frames: u64,
    /// Source image size of the last frame.
    size: Option<(u32, u32)>,
    resolution_changes: u64,
}

impl TrackStage {
    pub fn new(config: &TrackConfig) -> anyhow::Result<Self> {
        let params = config.params(None)?;
        Ok(Self {
            config: *config,
            tracker: Tracker::new(params),
            dets: Vec::new(),
            out: Vec::new(),
            last_seq: None,
            fresh_frames: 0,
            coasted_frames: 0,
            gap_frames: 0,
            size: None,
            resolution_changes: 0,
        })
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}

fn to_detection(t: &TrackOut) -> Detection {
    Detection {
        bbox: BBox {
            x1: t.xyxy[0] as f32,
            y1: t.xyxy[1] as f32,
            x2: t.xyxy[2] as f32,
            y2: t.xyxy[3] as f32,
        },
        score: t.score as f32,
        class_id: t.class_id,
        track_id: Some(t.track_id),
        predicted: t.predicted,
    }
}

impl Stage for TrackStage {
    fn name(&self) -> &'static str {
        "track"
    }

    fn start(&mut self, ctx: &mut StartContext) -> anyhow::Result<()> {
        self.tracker = Tracker::new(self.config.params(ctx.source.fps)?);
        self.last_seq = None;
        Ok(())
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<Flow> {
        let size = (frame.image.width, frame.image.height);
        if self.size.is_some_and(|s| s != size) {
            let (w, h) = self.size.unwrap_or_default();
            if self.resolution_changes == 0 {
                tracing::warn!(
                    "track: frame {} is {}x{}, the frames before were {w}x{h}: tracks restart (ids continue); \
                     further size changes are counted as `resolution_changes`, not logged",
                    frame.seq,
                    size.0,
                    size.1
                );
            }
            self.resolution_changes += 1;
            self.tracker.restart();
            self.last_seq = None;
        }
        self.size = Some(size);
        if let Some(last) = self.last_seq {
            // Frames dropped upstream still took time: predict through them (bounded, so a
            // restarted source cannot stall the stage).
            let gap = frame.seq.saturating_sub(last).saturating_sub(1).min(1000);
            for _ in 0..gap {
                self.tracker.coast(&mut self.out);
            }
            self.gap_frames += gap;
        }
        self.last_seq = Some(frame.seq);
        if frame.detections_fresh {
            self.dets.clear();
            self.dets.extend(frame.detections.iter().map(|d| Det {
                xyxy: [
                    d.bbox.x1 as f64,
                    d.bbox.y1 as f64,
                    d.bbox.x2 as f64,
                    d.bbox.y2 as f64,
                ],
                score: d.score as f64,
                class_id: d.class_id,
            }));
            self.tracker.update(&self.dets, &mut self.out);
            self.fresh_frames += 1;
        } else {
            self.tracker.coast(&mut self.out);
            self.coasted_frames += 1;
        }
        frame.detections.clear();
        frame.detections.extend(self.out.iter().map(to_detection));
        Ok(Flow::Continue)
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![
            ("fresh_frames".into(), self.fresh_frames),
            ("coasted_frames".into(), self.coasted_frames),
            ("gap_frames_predicted".into(), self.gap_frames),
            ("tracks_held".into(), self.tracker.num_tracks() as u64),
            ("resolution_changes".into(), self.resolution_changes),
        ]
    }
}
