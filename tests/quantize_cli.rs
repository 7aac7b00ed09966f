//! `perch model quantize` and int8 models in the commands that run a model.

use std::path::{Path, PathBuf};
use std::process::Command;

fn perch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_perch"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("quantize_cli").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.parent().unwrap()).unwrap();
    d
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = perch().args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn quantize_then_detect_and_bench_the_result() {
    let dir = out_dir("q");
    let d = dir.to_str().unwrap();
    let (ok, stdout, stderr) = run(&[
        "model", "quantize", "models/yolov12n", "--calib", "datasets/vtest", "--frames", "2", "--imgsz", "320",
        "--method", "minmax", "--keep-f32", "model.0", "--threads", "2", "-o", d,
    ]);
    assert!(ok, "{stderr}\n{stdout}");
    assert!(stdout.contains("118 int8 convs, 1 kept in f32 (model.0)"), "{stdout}");
    assert!(stderr.contains("calibrating on 2 of 200 frames"), "{stderr}");
    let (ok, stdout, stderr) = run(&["detect", "--model", d, "--imgsz", "320", "--json", "datasets/vtest/img1/000150.jpg"]);
    assert!(ok, "{stderr}");
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let persons = r["detections"].as_array().unwrap().iter().filter(|d| d["class"] == "person").count();
    assert!(persons >= 3, "{stdout}");
    let (ok, stdout, stderr) = run(&["bench", "detect", "--model", d, "--imgsz", "320", "--runs", "2", "--warmup", "1", "--json"]);
    assert!(ok, "{stderr}");
    let b: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(b["latency_ms"]["n"], 2);
    // The same output again needs --force; an unknown method is refused by name.
    let (ok, _, stderr) = run(&["model", "quantize", "models/yolov12n", "--calib", "datasets/vtest", "-o", d]);
    assert!(!ok && stderr.contains("--force"), "{stderr}");
    let (ok, _, stderr) = run(&["model", "quantize", "models/yolov12n", "--calib", "datasets/vtest", "--method", "entropy", "-o", d]);
    assert!(!ok && stderr.contains("invalid value 'entropy'") && stderr.contains("minmax, percentile, mse"), "{stderr}");
    let (ok, stdout, _) = run(&["model", "quantize", "models/yolov12n", "--list-layers"]);
    assert!(ok && stdout.lines().count() == 119 && stdout.contains("model.21.cv3.2.2"), "{stdout}");
}

#[test]
fn the_nano_profile_runs_the_committed_int8_model() {
    let dir = out_dir("nano");
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    let out = perch()
        .args(["run", "--config", "configs/nano.toml", "--set", "detect.threads=2"])
        // Every frame detected, so the count below does not depend on the machine (the profile's
        // `async` schedule publishes frames of a max-pacing replay before the detector is done).
        .args(["--set", "detect.schedule=\"every_frame\""])
        .args(["--set", "source.pacing=max", "--set", "source.end_frame=6", "--set", "pipeline.budget_ms=600000"])
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["frames"]["published"], 6, "{stdout}");
    let detect = &r["stages"][2];
    assert!(detect["counters"]["detections"].as_u64().unwrap() >= 6 * 3, "{stdout}");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/nano.toml")).unwrap();
    assert!(text.contains("model = \"../models/yolov12n-int8\""));
}
