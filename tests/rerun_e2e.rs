//! `perch run --set rerun.sink=save` writes a recording that Rerun's own reader (rerun-sdk 0.36.3)
//! accepts, with the frames, boxes and labels perch published. Needs `--features rerun` and the
//! `.venv-rerun` that `nodes/rerun/scripts/setup-venv.sh` builds.
#![cfg(feature = "rerun")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[test]
fn replay_recording_matches_what_perch_published() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = repo.join(".venv-rerun/bin/python");
    if perch_pipeline::fixtures::fixture_path(&python, "run nodes/rerun/scripts/setup-venv.sh").is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rerun_e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let (rrd, report, dets) = (dir.join("out.rrd"), dir.join("report.json"), dir.join("dets.jsonl"));
    let out = Command::new(env!("CARGO_BIN_EXE_perch"))
        .current_dir(repo)
        .args(["run", "--config", "configs/replay.toml", "--set", "source.pacing=max", "--set", "source.end_frame=6"])
        .args(["--set", "pipeline.budget_ms=600000", "--set", "rerun.sink=save", "--set", "rerun.queue_depth=2"])
        .arg("--set")
        .arg(format!("rerun.path=\"{}\"", rrd.display()))
        .arg("--report")
        .arg(&report)
        .arg("--detections")
        .arg(&dets)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["invariant_ok"], true);
    let tap = &r["taps"]["rerun"];
    assert_eq!(tap["observed"], r["frames"]["published"]);

    // Expected content, built from what perch published (the JSON lines), not from the recording.
    let mut boxes = BTreeMap::new();
    let mut labels = BTreeMap::new();
    let mut tracks = BTreeMap::new();
    for line in std::fs::read_to_string(&dets).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let seq = v["seq"].to_string();
        let d = v["detections"].as_array().unwrap();
        boxes.insert(seq.clone(), d.len());
        labels.insert(seq.clone(), d.iter().map(|x| x["class"].clone()).collect::<Vec<_>>());
        tracks.insert(seq, d.iter().map(|x| x["track_id"].as_i64().unwrap_or(-1)).collect::<Vec<_>>());
    }
    assert!(boxes.values().sum::<usize>() > 0, "the replay frames show people");
    let dropped = tap["dropped"].as_u64().unwrap();
    let expect = serde_json::json!({
        "frames": tap["logged"],
        "entities": ["camera/image", "camera/image/detections", "metrics/latency/detect", "metrics/latency/end_to_end"],
        "boxes_per_frame": boxes,
        "labels": labels,
        "track_ids": tracks,
        "image_size": [768, 576],
        "allow_missing_frames": dropped > 0,
        "blueprint": true,
    });
    let exp_path = dir.join("expect.json");
    std::fs::write(&exp_path, serde_json::to_string_pretty(&expect).unwrap()).unwrap();
    let check = Command::new(&python)
        .arg(repo.join("nodes/rerun/scripts/check_rrd.py"))
        .arg("--expect")
        .arg(&exp_path)
        .arg(&rrd)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "check_rrd.py rejected the recording:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
