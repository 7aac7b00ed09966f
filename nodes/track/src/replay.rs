//! Run a tracker over detections stored as MOT rows (a `det.txt`), frame by frame.

use std::collections::BTreeMap;

use crate::mot::MotRow;
use crate::tracker::{Det, TrackOut, Tracker, TrackerParams};

/// Track `dets` (MOT rows, `conf` = score, `bbox` = left/top/width/height) over frames
/// `first..=last`. Frames where `fresh(frame)` is false coast (their detections are ignored and
/// tracks are published as predictions). Returns the published tracks as MOT result rows
/// (`conf` = score of the detection behind the track, or of the last one when predicted).
pub fn track_detections(
    dets: &[MotRow],
    params: TrackerParams,
    first: i64,
    last: i64,
    fresh: impl Fn(i64) -> bool,
) -> Vec<MotRow> {
    let mut by_frame: BTreeMap<i64, Vec<Det>> = BTreeMap::new();
    for r in dets {
        let [l, t, w, h] = r.bbox;
        by_frame.entry(r.frame).or_default().push(Det {
            xyxy: [l, t, l + w, t + h],
            score: r.conf,
            class_id: 0,
        });
    }
    let mut tracker = Tracker::new(params);
    let mut out: Vec<TrackOut> = Vec::new();
    let mut rows = Vec::new();
    for frame in first..=last {
        if fresh(frame) {
            tracker.update(
                by_frame.get(&frame).map(|v| v.as_slice()).unwrap_or(&[]),
                &mut out,
            );
        } else {
            tracker.coast(&mut out);
        }
        rows.extend(out.iter().map(|t| MotRow {
            frame,
            id: t.track_id as i64,
            bbox: [
                t.xyxy[0],
                t.xyxy[1],
                t.xyxy[2] - t.xyxy[0],
                t.xyxy[3] - t.xyxy[1],
            ],
            conf: t.score,
            col8: None,
            col9: None,
        }));
    }
    rows
}

/// First and last frame numbers in `rows` (None when empty).
pub fn frame_range(rows: &[MotRow]) -> Option<(i64, i64)> {
    rows.iter().fold(None, |acc, r| match acc {
        None => Some((r.frame, r.frame)),
        Some((a, b)) => Some((a.min(r.frame), b.max(r.frame))),
    })
}
