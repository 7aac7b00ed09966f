//! Lifecycle, coasting and association behaviour of the trackers, and the stage on real frames.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use perch_pipeline::{
    BBox, Detection, Flow, Frame, FramePool, Ledger, LiveStats, SourceInfo, Stage, StartContext,
    MAX_STAGES,
};
use perch_track::{Det, TrackConfig, TrackOut, TrackStage, Tracker, TrackerKind, TrackerParams};

/// Object `i` at frame `f`: 40x100 boxes, 120 px apart, moving right at 3 px/frame.
fn obj(i: usize, f: usize) -> [f64; 4] {
    let x = 20.0 + 120.0 * i as f64 + 3.0 * f as f64;
    [x, 50.0, x + 40.0, 150.0]
}

fn det(b: [f64; 4], score: f64) -> Det {
    Det {
        xyxy: b,
        score,
        class_id: 0,
    }
}

fn ids(out: &[TrackOut]) -> Vec<u64> {
    let mut v: Vec<u64> = out.iter().map(|t| t.track_id).collect();
    v.sort_unstable();
    v
}

fn bytetrack() -> Tracker {
    Tracker::new(TrackerParams::default())
}

#[test]
fn clean_motion_keeps_one_id_per_object() {
    for kind in [TrackerKind::Bytetrack, TrackerKind::Sort] {
        let mut t = Tracker::new(TrackerParams {
            kind,
            ..TrackerParams::default()
        });
        let mut out = Vec::new();
        for f in 0..100 {
            let dets: Vec<Det> = (0..5).map(|i| det(obj(i, f), 0.9)).collect();
            t.update(&dets, &mut out);
            assert_eq!(ids(&out), vec![1, 2, 3, 4, 5], "{kind:?} frame {f}");
            for o in &out {
                // Ids follow objects: id k is object k-1, and the filtered box is close to it.
                let b = obj(o.track_id as usize - 1, f);
                assert!(
                    (o.xyxy[0] - b[0]).abs() < 2.0,
                    "{kind:?} frame {f}: {:?} vs {:?}",
                    o.xyxy,
                    b
                );
                assert!(!o.predicted);
            }
        }
    }
}

#[test]
fn coasting_predicts_forward_and_marks_predicted() {
    let mut t = bytetrack();
    let mut out = Vec::new();
    for f in 0..30 {
        t.update(&[det(obj(0, f), 0.9), det(obj(1, f), 0.8)], &mut out);
    }
    let before: Vec<TrackOut> = out.clone();
    for k in 1..=5 {
        t.coast(&mut out);
        assert_eq!(ids(&out), vec![1, 2]);
        for (o, b) in out.iter().zip(&before) {
            assert!(o.predicted);
            assert_eq!(o.score, b.score);
            // Constant velocity: 3 px per frame to the right.
            let moved = o.xyxy[0] - b.xyxy[0];
            assert!(
                (moved - 3.0 * k as f64).abs() < 0.5,
                "coast {k}: moved {moved}"
            );
        }
    }
    // Detections come back where the objects really are: same ids, not predicted.
    t.update(&[det(obj(0, 35), 0.9), det(obj(1, 35), 0.8)], &mut out);
    assert_eq!(ids(&out), vec![1, 2]);
    assert!(out.iter().all(|o| !o.predicted));
}

#[test]
fn lost_tracks_are_hidden_then_refound_with_their_id() {
    let mut t = bytetrack();
    let mut out = Vec::new();
    for f in 0..20 {
        t.update(&[det(obj(0, f), 0.9), det(obj(1, f), 0.9)], &mut out);
    }
    // Object 1 occluded for 10 frames: not published meanwhile.
    for f in 20..30 {
        t.update(&[det(obj(0, f), 0.9)], &mut out);
        assert_eq!(ids(&out), vec![1], "frame {f}");
    }
    t.update(&[det(obj(0, 30), 0.9), det(obj(1, 30), 0.9)], &mut out);
    assert_eq!(ids(&out), vec![1, 2], "re-found with its old id");
}

#[test]
fn lost_tracks_are_removed_after_the_buffer() {
    let params = TrackerParams {
        track_buffer: 5,
        ..TrackerParams::default()
    };
    let mut t = Tracker::new(params);
    let mut out = Vec::new();
    for f in 0..10 {
        t.update(&[det(obj(0, f), 0.9)], &mut out);
    }
    for _ in 0..7 {
        t.update(&[], &mut out);
        assert!(out.is_empty());
    }
    assert_eq!(t.num_tracks(), 0, "lost longer than track_buffer: removed");
    // Back at the last seen place: a new track (tentative first, then id 2).
    t.update(&[det(obj(0, 9), 0.9)], &mut out);
    assert!(out.is_empty());
    t.update(&[det(obj(0, 9), 0.9)], &mut out);
    assert_eq!(ids(&out), vec![2]);
}

#[test]
fn tentative_tracks_need_a_second_detection_except_on_the_first_frame() {
    let mut t = bytetrack();
    let mut out = Vec::new();
    t.update(&[det(obj(0, 0), 0.9)], &mut out);
    assert_eq!(ids(&out), vec![1], "first frame: confirmed at once");
    t.update(&[det(obj(0, 1), 0.9), det(obj(3, 1), 0.9)], &mut out);
    assert_eq!(ids(&out), vec![1], "a newcomer is tentative");
    t.update(&[det(obj(0, 2), 0.9)], &mut out);
    assert_eq!(
        ids(&out),
        vec![1],
        "an unconfirmed newcomer without a second detection is dropped"
    );
    t.update(&[det(obj(0, 3), 0.9), det(obj(3, 3), 0.9)], &mut out);
    t.update(&[det(obj(0, 4), 0.9), det(obj(3, 4), 0.9)], &mut out);
    assert_eq!(ids(&out), vec![1, 2], "confirmed ids stay dense");
}

#[test]
fn low_score_detections_continue_tracks_only_in_bytetrack() {
    for (kind, expect) in [
        (TrackerKind::Bytetrack, vec![1]),
        (TrackerKind::Sort, vec![]),
    ] {
        let mut t = Tracker::new(TrackerParams {
            kind,
            ..TrackerParams::default()
        });
        let mut out = Vec::new();
        for f in 0..10 {
            t.update(&[det(obj(0, f), 0.9)], &mut out);
        }
        // Partly occluded: the detector is unsure (between track_low_thresh and track_high_thresh).
        t.update(&[det(obj(0, 10), 0.15)], &mut out);
        assert_eq!(ids(&out), expect, "{kind:?}");
        // Below track_low_thresh: ignored by both.
        t.update(&[det(obj(0, 11), 0.05)], &mut out);
        assert!(out.is_empty(), "{kind:?}");
    }
}

#[test]
fn low_score_detections_never_start_tracks() {
    let mut t = bytetrack();
    let mut out = Vec::new();
    for f in 0..5 {
        t.update(&[det(obj(0, f), 0.2)], &mut out);
        assert!(out.is_empty());
    }
    assert_eq!(t.num_tracks(), 0);
}

#[test]
fn class_follows_the_latest_detection_and_association_ignores_it() {
    let mut t = bytetrack();
    let mut out = Vec::new();
    for f in 0..5 {
        t.update(
            &[Det {
                xyxy: obj(0, f),
                score: 0.9,
                class_id: 2,
            }],
            &mut out,
        );
    }
    t.update(
        &[Det {
            xyxy: obj(0, 5),
            score: 0.9,
            class_id: 7,
        }],
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].track_id, out[0].class_id), (1, 7));
}

#[test]
fn degenerate_and_non_finite_boxes_are_ignored() {
    let mut t = bytetrack();
    let mut out = Vec::new();
    let bad = [
        det([10.0, 10.0, 10.0, 50.0], 0.9),
        det([f64::NAN, 10.0, 20.0, 50.0], 0.9),
        det([10.0, 10.0, 20.0, 50.0], f64::NAN),
    ];
    for _ in 0..3 {
        t.update(&bad, &mut out);
    }
    assert!(out.is_empty());
    assert_eq!(t.num_tracks(), 0);
}

#[test]
fn crossing_objects_keep_their_ids() {
    // Two people walk through each other (full overlap for a few frames). The Kalman velocity
    // carries each id through.
    let mut t = bytetrack();
    let mut out = Vec::new();
    let a = |f: usize| {
        let x = 0.0 + 6.0 * f as f64;
        [x, 50.0, x + 40.0, 150.0]
    };
    let b = |f: usize| {
        let x = 300.0 - 6.0 * f as f64;
        [x, 52.0, x + 40.0, 152.0]
    };
    let mut first_ids = None;
    for f in 0..50 {
        // While they overlap, the detector sees one of them only.
        let overlapping = (a(f)[0] - b(f)[0]).abs() < 30.0;
        let dets = if overlapping {
            vec![det(a(f), 0.9)]
        } else {
            vec![det(a(f), 0.9), det(b(f), 0.9)]
        };
        t.update(&dets, &mut out);
        if f == 5 {
            first_ids = Some((
                out.iter().find(|o| o.xyxy[0] < 150.0).unwrap().track_id,
                out.len(),
            ));
        }
    }
    let (id_a, n) = first_ids.unwrap();
    assert_eq!(n, 2);
    // Frame 49: a is at x = 294 (right), b at x = 6 (left).
    let right = out.iter().find(|o| o.xyxy[0] > 150.0).expect("a published");
    assert_eq!(right.track_id, id_a, "{out:?}");
}

fn start_context(fps: Option<f64>) -> StartContext {
    StartContext {
        source: SourceInfo {
            name: "test".into(),
            width: 768,
            height: 576,
            fps,
            frames: None,
            ..Default::default()
        },
        class_names: None,
        live: Arc::new(LiveStats::new(
            vec!["capture".into(), "track".into()],
            Arc::new(Ledger::new()),
        )),
        budget: Duration::from_millis(100),
    }
}

fn frame(pool: &FramePool, seq: u64, dets: &[[f64; 4]], fresh: bool) -> Frame {
    let now = Instant::now();
    let mut f = Frame {
        seq,
        source_index: seq,
        source_ts: Duration::from_millis(100 * seq),
        captured_at: now,
        deadline: now + Duration::from_millis(100),
        stamps: [Default::default(); MAX_STAGES],
        data: pool.take(),
    };
    f.detections.clear();
    f.detections.extend(dets.iter().map(|b| Detection {
        bbox: BBox {
            x1: b[0] as f32,
            y1: b[1] as f32,
            x2: b[2] as f32,
            y2: b[3] as f32,
        },
        score: 0.9,
        class_id: 0,
        track_id: None,
        predicted: false,
    }));
    f.detections_fresh = fresh;
    f
}

#[test]
fn stage_tracks_coasts_and_predicts_through_dropped_frames() {
    let pool = FramePool::new(4);
    let mut stage = TrackStage::new(&TrackConfig::default()).unwrap();
    assert_eq!(stage.name(), "track");
    stage.start(&mut start_context(Some(10.0))).unwrap();
    let mut seq = 0;
    for f in 0..20 {
        let mut fr = frame(&pool, seq, &[obj(0, f), obj(1, f)], true);
        assert_eq!(stage.process(&mut fr).unwrap(), Flow::Continue);
        let got: HashSet<u64> = fr.detections.iter().map(|d| d.track_id.unwrap()).collect();
        assert_eq!(got, HashSet::from([1, 2]));
        seq += 1;
    }
    // The detector skips a frame: boxes are predictions, one frame further.
    let mut fr = frame(&pool, seq, &[], false);
    stage.process(&mut fr).unwrap();
    assert_eq!(fr.detections.len(), 2);
    assert!(fr
        .detections
        .iter()
        .all(|d| d.predicted && d.track_id.is_some()));
    let x0 = fr
        .detections
        .iter()
        .find(|d| d.track_id == Some(1))
        .unwrap()
        .bbox
        .x1 as f64;
    assert!((x0 - obj(0, 20)[0]).abs() < 1.0, "{x0}");
    seq += 1;
    // Three frames dropped upstream (seq jumps by 4): predicted through, ids kept.
    seq += 3;
    let mut fr = frame(&pool, seq, &[obj(0, 24), obj(1, 24)], true);
    stage.process(&mut fr).unwrap();
    let got: HashSet<u64> = fr.detections.iter().map(|d| d.track_id.unwrap()).collect();
    assert_eq!(got, HashSet::from([1, 2]));
    assert!(fr.detections.iter().all(|d| !d.predicted));
    let counters: std::collections::HashMap<String, u64> = stage.counters().into_iter().collect();
    assert_eq!(counters["fresh_frames"], 21);
    assert_eq!(counters["coasted_frames"], 1);
    assert_eq!(counters["gap_frames_predicted"], 3);
}

#[test]
fn config_parses_toml_with_defaults_and_rejects_bad_values() {
    let c: TrackConfig = toml::from_str("tracker = \"sort\"\ntrack_buffer = 60\n").unwrap();
    assert_eq!(c.tracker, TrackerKind::Sort);
    assert_eq!(c.track_buffer, 60);
    assert_eq!(c.track_high_thresh, 0.25);
    assert_eq!(TrackConfig::default().match_thresh, 0.8);
    assert!(TrackConfig::default().fuse_score);
    let e = toml::from_str::<TrackConfig>("trackr = \"sort\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("trackr"), "{e}");
    let e = toml::from_str::<TrackConfig>("tracker = \"deepsort\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bytetrack") && e.contains("sort"), "{e}");
    let bad = TrackConfig {
        track_low_thresh: 0.5,
        ..TrackConfig::default()
    };
    let e = TrackStage::new(&bad).err().unwrap().to_string();
    assert!(e.contains("track.track_low_thresh"), "{e}");
    let bad = TrackConfig {
        frame_rate: Some(0.0),
        ..TrackConfig::default()
    };
    assert!(TrackStage::new(&bad)
        .err()
        .unwrap()
        .to_string()
        .contains("track.frame_rate"));
    // Frame rate falls back to the source's, then 30.
    assert_eq!(
        TrackConfig::default()
            .params(Some(10.0))
            .unwrap()
            .frame_rate,
        10.0
    );
    assert_eq!(
        TrackConfig::default().params(None).unwrap().frame_rate,
        30.0
    );
}
