//! Late (out-of-sequence) detections: applied at the frame they were computed on, tracks carried
//! forward, predictions in between following the motion model.

use std::time::Duration;

use perch_pipeline::{testing, BBox, Detection, FramePool, Stage};
use perch_track::late::{Input, LateOutcome, LateTracker};
use perch_track::{Det, TrackConfig, TrackOut, TrackStage, TrackerParams};

/// Object `i` at frame `f`: 40x100 boxes, 150 px apart, moving right at 4 px/frame and down at 1.
fn obj(i: usize, f: u64) -> [f64; 4] {
    let (x, y) = (20.0 + 150.0 * i as f64 + 4.0 * f as f64, 50.0 + f as f64);
    [x, y, x + 40.0, y + 100.0]
}

fn dets(f: u64) -> Vec<Det> {
    (0..3).map(|i| Det { xyxy: obj(i, f), score: 0.9, class_id: 0 }).collect()
}

fn ts(f: u64) -> Duration {
    Duration::from_millis(33 * f)
}

fn sorted(out: &[TrackOut]) -> Vec<TrackOut> {
    let mut v = out.to_vec();
    v.sort_by_key(|t| t.track_id);
    v
}

/// A tracker fed on time: detections on `detected` frames, predictions elsewhere.
fn on_time(frames: u64, detected: impl Fn(u64) -> bool) -> Vec<TrackOut> {
    let mut t = LateTracker::new(TrackerParams::default(), 64);
    let mut out = Vec::new();
    for f in 0..frames {
        let d = dets(f);
        let input = if detected(f) { Input::Fresh(&d) } else { Input::Coast };
        t.step(f, ts(f), input, &mut out);
    }
    sorted(&out)
}

#[test]
fn a_late_detection_moves_the_tracks_where_an_on_time_one_would_have() {
    // Detected on time up to frame 10; then the detection of frame 12 arrives with frame 15.
    let mut late = LateTracker::new(TrackerParams::default(), 64);
    let mut out = Vec::new();
    for f in 0..=15u64 {
        let (now, d12) = (dets(f), dets(12));
        let input = match f {
            0..=10 => Input::Fresh(&now),
            15 => Input::Late { seq: 12, dets: &d12 },
            _ => Input::Coast,
        };
        let outcome = late.step(f, ts(f), input, &mut out);
        if f == 15 {
            assert_eq!(outcome, Some(LateOutcome::Applied { frames_back: 3 }));
        }
    }
    let late_out = sorted(&out);
    // The same detections, on time: frames 0..=10 and 12 detected, the rest predicted.
    let reference = on_time(16, |f| f <= 10 || f == 12);
    assert_eq!(late_out.len(), 3);
    assert_eq!(late_out, reference, "retrodiction gives exactly the on-time result");
    for t in &late_out {
        assert!(t.predicted);
        assert_eq!(t.age_frames, 3, "the newest detection behind the box is frame 12's");
    }
    // Applying frame 12's boxes as if they were frame 15's drags the tracks backwards.
    let mut naive = LateTracker::new(TrackerParams::default(), 64);
    for f in 0..=15u64 {
        let d = if f == 15 { dets(12) } else { dets(f) };
        let input = match f {
            0..=10 | 15 => Input::Fresh(&d),
            _ => Input::Coast,
        };
        naive.step(f, ts(f), input, &mut out);
    }
    let naive_out = sorted(&out);
    let truth = obj(0, 15)[0];
    let (good, bad) = (late_out[0].xyxy[0], naive_out[0].xyxy[0]);
    assert!((good - truth).abs() < 1.0, "late handling: x1 {good} vs the object at {truth}");
    assert!(truth - bad > 6.0, "as-if-current lags: x1 {bad} vs the object at {truth}");
}

#[test]
fn predictions_between_detections_follow_the_motion_model() {
    let mut t = LateTracker::new(TrackerParams::default(), 64);
    let mut out = Vec::new();
    for f in 0..20 {
        t.step(f, ts(f), Input::Fresh(&dets(f)), &mut out);
    }
    let learned = sorted(&out);
    let mut step1: Vec<(f64, f64)> = Vec::new();
    for k in 1..=6u64 {
        t.step(19 + k, ts(19 + k), Input::Coast, &mut out);
        for (i, (now, then)) in sorted(&out).iter().zip(&learned).enumerate() {
            assert!(now.predicted);
            assert_eq!(now.age_frames as u64, k);
            assert_eq!(now.track_id, then.track_id);
            let dx = now.xyxy[0] - then.xyxy[0];
            let dy = now.xyxy[1] - then.xyxy[1];
            if k == 1 {
                // The velocity the filter learned from the detections (4, 1 px/frame).
                assert!((dx - 4.0).abs() < 0.2 && (dy - 1.0).abs() < 0.1, "velocity ({dx}, {dy})");
                step1.push((dx, dy));
            }
            // Constant velocity: k frames further along at that velocity, exactly.
            let (vx, vy) = step1[i];
            assert!((dx - vx * k as f64).abs() < 1e-6 && (dy - vy * k as f64).abs() < 1e-6, "k={k}: moved ({dx}, {dy})");
            let (w0, w1) = (then.xyxy[2] - then.xyxy[0], now.xyxy[2] - now.xyxy[0]);
            assert!((w1 - w0).abs() < 0.2, "size holds: {w0} -> {w1}");
        }
    }
    let age = t.age(25, ts(25), 6);
    assert_eq!(age.frames, 6);
    assert!((age.ms - 6.0 * 33.0).abs() < 0.01, "{age:?}");
    assert_eq!(t.detection_age(25, ts(25)).unwrap().frames, 6);
}

#[test]
fn results_too_old_or_superseded_are_not_used() {
    let mut t = LateTracker::new(TrackerParams::default(), 8);
    let mut out = Vec::new();
    for f in 0..20 {
        t.step(f, ts(f), Input::Coast, &mut out);
    }
    let d = dets(5);
    assert_eq!(t.step(20, ts(20), Input::Late { seq: 5, dets: &d }, &mut out), Some(LateOutcome::TooOld));
    assert!(out.is_empty() && t.detection_age(20, ts(20)).is_none());
    let d = dets(18);
    assert_eq!(t.step(21, ts(21), Input::Late { seq: 18, dets: &d }, &mut out), Some(LateOutcome::Applied { frames_back: 3 }));
    assert_eq!(out.len(), 3, "first detections confirm tracks at once, carried to frame 21");
    let d = dets(17);
    assert_eq!(t.step(22, ts(22), Input::Late { seq: 17, dets: &d }, &mut out), Some(LateOutcome::Superseded));
    assert_eq!(t.detection_age(22, ts(22)).unwrap().frames, 4, "still frame 18's");
}

fn frame_dets(f: u64) -> Vec<Detection> {
    dets(f)
        .iter()
        .map(|d| {
            let b = d.xyxy;
            Detection::new(BBox { x1: b[0] as f32, y1: b[1] as f32, x2: b[2] as f32, y2: b[3] as f32 }, 0.9, 0)
        })
        .collect()
}

#[test]
fn the_stage_applies_a_late_result_at_its_frame_and_reports_ages() {
    let pool = FramePool::new(4);
    let mut stage = TrackStage::new(&TrackConfig::default()).unwrap();
    stage.start(&mut testing::start_context(Some(30.0), &["detect", "track"])).unwrap();
    let period = Duration::from_millis(33);
    let mut f0 = testing::frame(&pool, 0).period(period).build();
    let origin = f0.id();
    stage.process(&mut f0).unwrap();
    assert!(f0.detections.is_empty() && f0.detection_age.is_none(), "nothing detected yet");
    for seq in 1..3 {
        let mut f = testing::frame(&pool, seq).period(period).build();
        stage.process(&mut f).unwrap();
        assert!(f.detections.is_empty());
    }
    // Frame 0's result arrives with frame 3.
    let mut f3 = testing::frame(&pool, 3).period(period).detections(&frame_dets(0)).detections_of(origin).build();
    assert!(!f3.detections_fresh);
    stage.process(&mut f3).unwrap();
    assert_eq!(f3.detections.len(), 3);
    for d in &f3.detections {
        assert!(d.predicted && d.track_id.is_some());
        assert_eq!(d.age.frames, 3);
        assert!((d.age.ms - 99.0).abs() < 0.01, "{:?}", d.age);
    }
    let age = f3.detection_age.unwrap();
    assert_eq!((age.frames, age.ms), (3, 99.0));
    // A fresh frame: age zero.
    let mut f4 = testing::frame(&pool, 4).period(period).detections(&frame_dets(4)).fresh().build();
    stage.process(&mut f4).unwrap();
    assert!(f4.detections.iter().all(|d| !d.predicted && d.age.frames == 0));
    let c: std::collections::HashMap<String, u64> = stage.counters().into_iter().collect();
    assert_eq!((c["late_applied"], c["late_unused"], c["fresh_frames"], c["coasted_frames"]), (1, 0, 1, 4));
}
