//! Offline CDR interop: perch's bytes for fixed messages decode field-for-field with rosbags and with
//! rclpy's `deserialize_message` (ROS 2 Kilted wheels), rosbags re-serializes them byte-identically, and
//! rclpy-serialized bytes decode back in Rust to the same message.
//!
//! Needs the venv from `nodes/ros2/scripts/setup-venv.sh` (`$REPO/.venv-ros2`, or `PERCH_ROS2_VENV`).
//! Without it the test skips loudly, unless `PERCH_REQUIRE_FIXTURES=1`, when it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use perch_ros2::msg::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("PERCH_ROS2_VENV").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".venv-ros2"));
    perch_pipeline::fixtures::fixture_path(&venv.join("bin/python"), "run nodes/ros2/scripts/setup-venv.sh")
}

fn header(sec: i32, nanosec: u32, frame: &str) -> Header {
    Header { stamp: Time { sec, nanosec }, frame_id: frame.into() }
}

#[allow(clippy::too_many_arguments)]
fn detection(h: &Header, cx: f64, cy: f64, w: f64, hh: f64, class_id: &str, score: f64, id: &str) -> Detection2D {
    let mut pose = PoseWithCovariance::default();
    // Non-trivial pose values so a swapped or shifted field cannot pass.
    pose.pose.position = Point { x: 1.5, y: -2.25, z: 3.125 };
    pose.pose.orientation = Quaternion { x: 0.0, y: 0.0, z: 0.38268343236508984, w: 0.9238795325112867 };
    for (i, c) in pose.covariance.iter_mut().enumerate() {
        *c = i as f64 * 0.5 - 3.0;
    }
    Detection2D {
        header: h.clone(),
        results: vec![ObjectHypothesisWithPose { hypothesis: ObjectHypothesis { class_id: class_id.into(), score }, pose }],
        bbox: BoundingBox2D { center: Pose2D { position: Point2D { x: cx, y: cy }, theta: 0.125 }, size_x: w, size_y: hh },
        id: id.into(),
    }
}

/// Decodes bytes in Rust and says whether they give the original message.
type DecodeCheck = Box<dyn Fn(&[u8]) -> anyhow::Result<bool>>;

struct Sample {
    name: &'static str,
    ros_type: String,
    cdr: Vec<u8>,
    json: String,
    check_back: DecodeCheck,
}

fn sample<M>(name: &'static str, m: M) -> Sample
where
    M: RosMessage + serde::de::DeserializeOwned + PartialEq + Clone + std::fmt::Debug + 'static,
{
    let cdr = to_cdr(&m).unwrap();
    assert_eq!(from_cdr::<M>(&cdr).unwrap(), m, "{name}: Rust round trip");
    let json = serde_json::to_string(&m).unwrap();
    Sample {
        name,
        ros_type: M::ros_type(),
        cdr,
        json,
        check_back: Box::new(move |bytes| {
            let back: M = from_cdr(bytes)?;
            if back != m {
                eprintln!("{name}: rclpy bytes decode to {back:?}\n expected {m:?}");
            }
            Ok(back == m)
        }),
    }
}

fn samples() -> Vec<Sample> {
    let h = header(1_763_791_234, 987_654_321, "camera");
    let two = Detection2DArray {
        header: h.clone(),
        detections: vec![
            detection(&h, 320.5, 240.25, 50.75, 180.0, "person", 0.8999999761581421, "17"),
            // Odd string lengths shift the alignment of the doubles that follow.
            detection(&h, 1.0, 2.0, 3.0, 4.0, "traffic light", 0.25, ""),
            detection(&h, -0.0, 1e-300, 1e300, f64::MIN_POSITIVE, "caf\u{e9}", 1.0, "1099511627776"),
        ],
    };
    let mut multi = two.clone();
    multi.detections[0].results.push(ObjectHypothesisWithPose {
        hypothesis: ObjectHypothesis { class_id: "pedestrian".into(), score: 0.125 },
        pose: PoseWithCovariance::default(),
    });
    multi.detections[1].results.clear();
    let diag = DiagnosticArray {
        header: header(5, 6, "camera"),
        status: vec![
            DiagnosticStatus {
                level: DiagnosticStatus::WARN,
                name: "perch: pipeline".into(),
                message: "deadline miss rate 25.0% over the last period exceeds 5.0%".into(),
                hardware_id: "/perch/perch".into(),
                values: vec![
                    KeyValue { key: "fps".into(), value: "9.50".into() },
                    KeyValue { key: "dropped_deadline".into(), value: "3".into() },
                ],
            },
            DiagnosticStatus { level: DiagnosticStatus::OK, name: "perch: stage detect".into(), ..Default::default() },
        ],
    };
    let img = CompressedImage { header: header(7, 8, "camera_optical"), format: "jpeg".into(), data: vec![0xff, 0xd8, 0xff, 0, 1, 2, 0xff, 0xd9] };
    vec![
        sample("detections_empty", Detection2DArray { header: header(0, 0, ""), detections: vec![] }),
        sample("detections_three", two),
        sample("detections_multi_results", multi),
        sample("header", header(-1, 999_999_999, "x")),
        sample("diagnostics", diag),
        sample("compressed_image", img),
        sample("compressed_image_empty", CompressedImage::default()),
    ]
}

#[test]
fn cdr_bytes_agree_with_rosbags_and_rclpy() {
    let Some(py) = venv_python() else { return };
    let dir = std::env::temp_dir().join(format!("perch-ros2-cdr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let samples = samples();
    let manifest: Vec<_> = samples.iter().map(|s| serde_json::json!({"name": s.name, "type": s.ros_type})).collect();
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    for s in &samples {
        std::fs::write(dir.join(format!("{}.cdr", s.name)), &s.cdr).unwrap();
        std::fs::write(dir.join(format!("{}.json", s.name)), &s.json).unwrap();
    }
    let script = repo_root().join("nodes/ros2/scripts/cdr_check.py");
    let out = Command::new(&py).arg(&script).arg(&dir).output().expect("run cdr_check.py");
    assert!(
        out.status.success(),
        "cdr_check.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("result.json")).unwrap()).unwrap();
    let mut failures = Vec::new();
    for s in &samples {
        let r = &result[s.name];
        for peer in ["rosbags", "rclpy"] {
            let diffs = r[peer].as_array().cloned().unwrap_or_default();
            if r[peer].is_null() || !diffs.is_empty() {
                failures.push(format!("{}: {peer} decodes differently: {diffs:?}", s.name));
            }
        }
        if r["rosbags_bytes_identical"] != serde_json::Value::Bool(true) {
            failures.push(format!("{}: rosbags re-serializes different bytes", s.name));
        }
        let back = std::fs::read(dir.join(format!("{}.rclpy.cdr", s.name))).unwrap_or_default();
        // rclpy leaves padding bytes uninitialised, so compare decoded messages, not bytes.
        match (s.check_back)(&back) {
            Ok(true) => {}
            Ok(false) => failures.push(format!("{}: rclpy-serialized bytes decode to a different message in Rust", s.name)),
            Err(e) => failures.push(format!("{}: rclpy-serialized bytes do not decode in Rust: {e:#}", s.name)),
        }
        if back.len() != s.cdr.len() {
            failures.push(format!("{}: rclpy wrote {} bytes, perch {}", s.name, back.len(), s.cdr.len()));
        }
    }
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(failures.is_empty(), "{} problems (files kept in {}):\n{}", failures.len(), dir.display(), failures.join("\n"));
    eprintln!("cdr_interop: {} message samples agree with rosbags and rclpy", samples.len());
}
