//! Pure conversions from perch's frames and live statistics to ROS 2 messages (no DDS here).

use std::time::{Duration, Instant, SystemTime};

use perch_pipeline::{Detection, DropReason, LiveSnapshot, SourceHeader};

use crate::config::ClassIdMode;
use crate::msg::{
    BoundingBox2D, Detection2D, Detection2DArray, DiagnosticArray, DiagnosticStatus, Header, KeyValue,
    ObjectHypothesis, ObjectHypothesisWithPose, Point2D, Pose2D, PoseWithCovariance, Time,
};

/// The wall-clock time at which a frame was captured: `now_wall - (now_mono - captured_at)`.
///
/// `Frame::captured_at` is a monotonic `Instant` (the moment the capture stage produced the
/// frame), which has no epoch; ROS stamps are wall-clock. Mapping through one (wall, mono) pair
/// taken together keeps the stamp equal to the capture moment, independent of how long the
/// frame spent in the pipeline.
pub fn capture_wall_time(captured_at: Instant, now_mono: Instant, now_wall: SystemTime) -> SystemTime {
    let age = now_mono.saturating_duration_since(captured_at);
    now_wall.checked_sub(age).unwrap_or(now_wall)
}

/// The stamp and frame id of a frame's output messages: the input image's header when the source
/// gave one (`SourceHeader::stamp` set: a ROS 2 image), else `fallback()` (the capture wall time)
/// and `ros2.frame_id`. An image header with an empty `frame_id` keeps the empty id (it is the
/// image's; downstream pairing must see the same).
pub fn output_header<'a>(source: &'a SourceHeader, fallback: impl FnOnce() -> Time, frame_id: &'a str) -> (Time, &'a str) {
    match source.stamp {
        Some(stamp) => (Time::from_duration(stamp), source.frame_id.as_str()),
        None => (fallback(), frame_id),
    }
}

/// How a class index becomes `ObjectHypothesis.class_id`.
pub fn class_label(mode: ClassIdMode, class_id: u32, names: Option<&[String]>) -> String {
    match (mode, names.and_then(|n| n.get(class_id as usize))) {
        (ClassIdMode::Name, Some(name)) => name.clone(),
        _ => class_id.to_string(),
    }
}

/// `stamp` moved back by `ms` milliseconds (saturating at the epoch).
pub fn stamp_before(stamp: Time, ms: f32) -> Time {
    let ns = stamp.sec as i64 * 1_000_000_000 + stamp.nanosec as i64 - (ms.max(0.0) as f64 * 1e6).round() as i64;
    let ns = ns.max(0);
    Time { sec: (ns / 1_000_000_000) as i32, nanosec: (ns % 1_000_000_000) as u32 }
}

/// Fill `out` (reusing its allocations) with one frame's detections. Boxes are in source pixels.
/// Each `Detection2D.header` is the header of the image its detection was computed on: the
/// array's own for a box detected on this frame, `stamp - age` for a box the tracker predicted
/// from an earlier frame's detection (see the README, *Messages*).
pub fn fill_detection_array(
    out: &mut Detection2DArray,
    stamp: Time,
    frame_id: &str,
    detections: &[Detection],
    mode: ClassIdMode,
    names: Option<&[String]>,
) {
    out.header.stamp = stamp;
    if out.header.frame_id != frame_id {
        out.header.frame_id = frame_id.to_string();
    }
    out.detections.truncate(detections.len());
    while out.detections.len() < detections.len() {
        out.detections.push(Detection2D::default());
    }
    for (d, det) in out.detections.iter_mut().zip(detections) {
        d.header.clone_from(&out.header);
        if det.predicted {
            d.header.stamp = stamp_before(stamp, det.age.ms);
        }
        let (cx, cy) = det.bbox.center();
        d.bbox = BoundingBox2D {
            center: Pose2D { position: Point2D { x: cx as f64, y: cy as f64 }, theta: 0.0 },
            size_x: det.bbox.width() as f64,
            size_y: det.bbox.height() as f64,
        };
        d.results.truncate(1);
        if d.results.is_empty() {
            d.results.push(ObjectHypothesisWithPose::default());
        }
        let r = &mut d.results[0];
        r.hypothesis = ObjectHypothesis { class_id: class_label(mode, det.class_id, names), score: det.score as f64 };
        r.pose = PoseWithCovariance::default();
        d.id.clear();
        if let Some(t) = det.track_id {
            use std::fmt::Write;
            let _ = write!(d.id, "{t}");
        }
    }
}

/// Diagnostics state carried from one period to the next (for per-period rates).
#[derive(Clone, Debug, Default)]
pub struct DiagWindow {
    pub captured: u64,
    pub deadline: u64,
}

/// Counters of the ROS 2 stage itself, shown in its diagnostics.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublisherCounts {
    pub detections_sent: u64,
    pub unsent: u64,
    pub images_sent: u64,
}

/// One `DiagnosticArray`: a `perch: pipeline` status (fps, drops by reason, deadline-miss rate over
/// the last period, WARN above `miss_rate_warn`) and one `perch: stage <name>` status per stage
/// with latency p50/p95/p99/max.
pub fn diagnostics(
    snap: &LiveSnapshot,
    prev: &mut DiagWindow,
    stamp: Time,
    frame_id: &str,
    hardware_id: &str,
    miss_rate_warn: f64,
    pubc: PublisherCounts,
) -> DiagnosticArray {
    let kv = |k: &str, v: String| KeyValue { key: k.to_string(), value: v };
    let ledger = &snap.ledger;
    let deadline = ledger.dropped(DropReason::Deadline);
    let d_captured = ledger.captured.saturating_sub(prev.captured);
    let d_deadline = deadline.saturating_sub(prev.deadline);
    let window_miss_rate = if d_captured > 0 { d_deadline as f64 / d_captured as f64 } else { 0.0 };
    let total_miss_rate = if ledger.captured > 0 { deadline as f64 / ledger.captured as f64 } else { 0.0 };
    *prev = DiagWindow { captured: ledger.captured, deadline };

    let warn = window_miss_rate > miss_rate_warn;
    let mut values = vec![
        kv("uptime_s", format!("{:.1}", snap.uptime_s)),
        kv("fps", format!("{:.2}", snap.fps)),
        kv("captured", ledger.captured.to_string()),
        kv("published", ledger.published.to_string()),
        kv("deadline_misses", deadline.to_string()),
        kv("deadline_miss_rate", format!("{window_miss_rate:.4}")),
        kv("deadline_miss_rate_total", format!("{total_miss_rate:.4}")),
        kv("miss_rate_warn", format!("{miss_rate_warn}")),
    ];
    for reason in DropReason::ALL {
        values.push(kv(&format!("dropped_{}", reason.as_str()), ledger.dropped(reason).to_string()));
    }
    values.push(kv("end_to_end_p50_ms", format!("{:.3}", snap.end_to_end.p50_ms)));
    values.push(kv("end_to_end_p99_ms", format!("{:.3}", snap.end_to_end.p99_ms)));
    values.push(kv("ros2_detections_sent", pubc.detections_sent.to_string()));
    values.push(kv("ros2_unsent", pubc.unsent.to_string()));
    values.push(kv("ros2_images_sent", pubc.images_sent.to_string()));
    let message = if warn {
        format!(
            "deadline miss rate {:.1}% over the last period exceeds {:.1}%",
            window_miss_rate * 100.0,
            miss_rate_warn * 100.0
        )
    } else {
        format!("{:.1} fps, deadline miss rate {:.1}%", snap.fps, window_miss_rate * 100.0)
    };
    let mut status = vec![DiagnosticStatus {
        level: if warn { DiagnosticStatus::WARN } else { DiagnosticStatus::OK },
        name: "perch: pipeline".into(),
        message,
        hardware_id: hardware_id.to_string(),
        values,
    }];
    for (name, lat) in &snap.stages {
        status.push(DiagnosticStatus {
            level: DiagnosticStatus::OK,
            name: format!("perch: stage {name}"),
            message: format!("p50 {:.2} ms, p99 {:.2} ms", lat.p50_ms, lat.p99_ms),
            hardware_id: hardware_id.to_string(),
            values: vec![
                kv("n", lat.n.to_string()),
                kv("p50_ms", format!("{:.3}", lat.p50_ms)),
                kv("p95_ms", format!("{:.3}", lat.p95_ms)),
                kv("p99_ms", format!("{:.3}", lat.p99_ms)),
                kv("max_ms", format!("{:.3}", lat.max_ms)),
                kv("mean_ms", format!("{:.3}", lat.mean_ms)),
            ],
        });
    }
    DiagnosticArray { header: Header { stamp, frame_id: frame_id.to_string() }, status }
}

/// Seconds between images at `rate_hz`.
pub fn image_interval(rate_hz: f64) -> Duration {
    Duration::from_secs_f64(1.0 / rate_hz.max(1e-3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_pipeline::{BBox, LatencySummary, LedgerSnapshot};

    fn det(x1: f32, y1: f32, x2: f32, y2: f32, score: f32, class_id: u32, track: Option<u64>) -> Detection {
        Detection { track_id: track, ..Detection::new(BBox { x1, y1, x2, y2 }, score, class_id) }
    }

    #[test]
    fn a_predicted_box_carries_the_stamp_of_the_frame_its_detection_was_computed_on() {
        let mut out = Detection2DArray::default();
        let mut late = det(10.0, 20.0, 110.0, 220.0, 0.75, 0, Some(7));
        late.predicted = true;
        late.age = perch_pipeline::DetectionAge { frames: 3, ms: 100.0 };
        let dets = [det(0.0, 0.0, 5.0, 5.0, 0.5, 0, Some(1)), late];
        let stamp = Time { sec: 10, nanosec: 50_000_000 };
        fill_detection_array(&mut out, stamp, "cam", &dets, ClassIdMode::Index, None);
        assert_eq!(out.detections[0].header.stamp, stamp, "detected on this frame: the frame's stamp");
        assert_eq!(out.detections[1].header.stamp, Time { sec: 9, nanosec: 950_000_000 }, "100 ms older");
        assert_eq!(out.detections[1].header.frame_id, "cam");
        assert_eq!(out.detections[1].id, "7");
        assert_eq!(stamp_before(Time { sec: 0, nanosec: 5 }, 1.0), Time::default(), "saturates at the epoch");
    }

    #[test]
    fn boxes_become_centre_and_size_in_source_pixels() {
        let names: Vec<String> = vec!["person".into(), "bicycle".into()];
        let mut out = Detection2DArray::default();
        let dets = [det(10.0, 20.0, 110.0, 220.0, 0.75, 1, Some(7)), det(0.5, 0.25, 2.5, 4.25, 0.5, 5, None)];
        fill_detection_array(&mut out, Time { sec: 3, nanosec: 4 }, "cam", &dets, ClassIdMode::Name, Some(&names));
        assert_eq!(out.header, Header { stamp: Time { sec: 3, nanosec: 4 }, frame_id: "cam".into() });
        assert_eq!(out.detections.len(), 2);
        let a = &out.detections[0];
        assert_eq!(a.header, out.header);
        assert_eq!((a.bbox.center.position.x, a.bbox.center.position.y, a.bbox.center.theta), (60.0, 120.0, 0.0));
        assert_eq!((a.bbox.size_x, a.bbox.size_y), (100.0, 200.0));
        assert_eq!(a.results.len(), 1);
        assert_eq!(a.results[0].hypothesis, ObjectHypothesis { class_id: "bicycle".into(), score: 0.75 });
        assert_eq!(a.results[0].pose.pose.orientation.w, 1.0);
        assert_eq!(a.id, "7");
        let b = &out.detections[1];
        // Unknown index falls back to the number; no track -> empty id.
        assert_eq!(b.results[0].hypothesis.class_id, "5");
        assert_eq!((b.bbox.center.position.x, b.bbox.center.position.y), (1.5, 2.25));
        assert_eq!(b.id, "");

        fill_detection_array(&mut out, Time::default(), "cam", &dets[1..], ClassIdMode::Index, Some(&names));
        assert_eq!(out.detections.len(), 1);
        assert_eq!(out.detections[0].results[0].hypothesis.class_id, "5");
        assert_eq!(out.detections[0].id, "");
        fill_detection_array(&mut out, Time::default(), "cam", &[], ClassIdMode::Index, None);
        assert!(out.detections.is_empty());
    }

    #[test]
    fn class_labels() {
        let names: Vec<String> = vec!["person".into()];
        assert_eq!(class_label(ClassIdMode::Name, 0, Some(&names)), "person");
        assert_eq!(class_label(ClassIdMode::Index, 0, Some(&names)), "0");
        assert_eq!(class_label(ClassIdMode::Name, 3, None), "3");
    }

    #[test]
    fn the_input_images_header_wins_over_the_capture_time() {
        let mut h = SourceHeader::default();
        let fallback = || Time { sec: 9, nanosec: 9 };
        assert_eq!(output_header(&h, fallback, "camera"), (Time { sec: 9, nanosec: 9 }, "camera"));
        h.set(Duration::new(1_700_000_001, 100_000_005), "cam_optical");
        assert_eq!(output_header(&h, fallback, "camera"), (Time { sec: 1_700_000_001, nanosec: 100_000_005 }, "cam_optical"));
        // Predicted boxes step back from the image's stamp.
        let mut out = Detection2DArray::default();
        let mut d = det(0.0, 0.0, 2.0, 2.0, 0.9, 0, Some(1));
        (d.predicted, d.age) = (true, perch_pipeline::DetectionAge { frames: 1, ms: 100.0 });
        let (stamp, id) = output_header(&h, fallback, "camera");
        fill_detection_array(&mut out, stamp, id, &[d], ClassIdMode::Index, None);
        assert_eq!(out.header.frame_id, "cam_optical");
        assert_eq!(out.detections[0].header.stamp, Time { sec: 1_700_000_001, nanosec: 5 });
        assert_eq!(out.detections[0].header.frame_id, "cam_optical");
    }

    #[test]
    fn capture_time_is_now_minus_age() {
        let mono = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let captured = mono - Duration::from_millis(250);
        assert_eq!(capture_wall_time(captured, mono, wall), wall - Duration::from_millis(250));
        assert_eq!(Time::from_system(wall - Duration::from_millis(250)), Time { sec: 999_999, nanosec: 750_000_000 });
    }

    #[test]
    fn diagnostics_warn_on_the_windowed_miss_rate() {
        let mut ledger = LedgerSnapshot { captured: 100, published: 90, ..Default::default() };
        ledger.dropped.insert(DropReason::Deadline, 10);
        ledger.dropped.insert(DropReason::Stale, 0);
        let lat = LatencySummary { n: 90, p50_ms: 5.0, p95_ms: 7.0, p99_ms: 9.0, max_ms: 12.0, mean_ms: 5.5 };
        let snap = LiveSnapshot {
            uptime_s: 10.0,
            stages: vec![("capture".into(), lat), ("detect".into(), lat)],
            end_to_end: lat,
            ledger: ledger.clone(),
            fps: 9.0,
        };
        let mut w = DiagWindow::default();
        let a = diagnostics(&snap, &mut w, Time::default(), "camera", "perch", 0.05, PublisherCounts::default());
        assert_eq!(a.status.len(), 3);
        assert_eq!(a.status[0].level, DiagnosticStatus::WARN); // 10 % > 5 %
        let get = |k: &str| a.status[0].values.iter().find(|v| v.key == k).unwrap().value.clone();
        assert_eq!(get("deadline_miss_rate"), "0.1000");
        assert_eq!(get("dropped_deadline"), "10");
        assert_eq!(a.status[2].name, "perch: stage detect");
        assert_eq!(a.status[2].values[3], KeyValue { key: "p99_ms".into(), value: "9.000".into() });
        // Next period: 100 more frames, no new misses -> OK again.
        let mut snap2 = snap.clone();
        snap2.ledger.captured = 200;
        let b = diagnostics(&snap2, &mut w, Time::default(), "camera", "perch", 0.05, PublisherCounts::default());
        assert_eq!(b.status[0].level, DiagnosticStatus::OK);
    }
}
