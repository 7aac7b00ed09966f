//! The default pipeline on real footage: capture → preprocess → detect (YOLOv12n) → track.

use std::path::Path;
use std::process::Command;

#[test]
fn default_pipeline_detects_and_tracks_people_on_the_replay() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipeline_e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    // Paced at max speed with a generous budget so every frame reaches the end on a slow CI machine.
    let out = Command::new(env!("CARGO_BIN_EXE_perch"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--config", "configs/replay.toml"])
        .args(["--set", "source.pacing=max", "--set", "source.end_frame=12", "--set", "pipeline.budget_ms=600000"])
        .arg("--report")
        .arg(&report)
        .arg("--detections")
        .arg(dir.join("dets.jsonl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["invariant_ok"], true);
    assert_eq!(r["frames"]["captured"], 12);
    assert_eq!(r["frames"]["published"], 12, "{stdout}");
    let names: Vec<&str> = r["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["capture", "preprocess", "detect", "track"]);
    let detect = &r["stages"][2];
    assert_eq!(detect["processed"], 12);
    // vtest shows several pedestrians in every frame: the detector finds them, the tracker keeps ids.
    assert!(detect["counters"]["detections"].as_u64().unwrap() >= 12 * 3, "{stdout}");
    let track = &r["stages"][3];
    assert_eq!(track["counters"]["fresh_frames"], 12);
    assert!(track["counters"]["tracks_held"].as_u64().unwrap() >= 3, "{stdout}");
    assert!(detect["latency"]["p50_ms"].as_f64().unwrap() > 0.0);
    // The JSON lines hold every published frame, with people tracked under stable ids.
    let lines = std::fs::read_to_string(dir.join("dets.jsonl")).unwrap();
    let frames: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(frames.len(), 12);
    let persons = frames.iter().flat_map(|f| f["detections"].as_array().unwrap()).filter(|d| d["class"] == "person").count();
    assert!(persons >= 12 * 3, "{persons} person boxes in 12 frames");
    let last = frames.last().unwrap()["detections"].as_array().unwrap();
    assert!(last.iter().all(|d| d["track_id"].as_u64().is_some()), "published boxes carry track ids");
}
