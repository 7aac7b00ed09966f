//! End-to-end runs of the `perch` binary on the committed replay sequence.

use std::path::{Path, PathBuf};
use std::process::Command;

fn perch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_perch"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The runtime alone (no model stages): fast and deterministic for queue and deadline behaviour.
const CAPTURE_ONLY: [&str; 6] = [
    "--set", "stages.preprocess.enabled=false",
    "--set", "stages.detect.enabled=false",
    "--set", "stages.track.enabled=false",
];

fn run_json(args: &[&str], name: &str) -> (serde_json::Value, String) {
    let report = out_dir(name).join("report.json");
    let out = perch()
        .args(["run", "--config", "configs/replay.toml"])
        .args(CAPTURE_ONLY)
        .args(args)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("perch runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "perch failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (json, stdout)
}

#[test]
fn replay_at_max_speed_publishes_every_frame_and_reports() {
    let (r, stdout) = run_json(&["--set", "source.pacing=max", "--set", "pipeline.budget_ms=60000"], "max");
    assert_eq!(r["schema"], "perch.report/2");
    assert_eq!(r["frames"]["captured"], 200);
    assert_eq!(r["invariant_ok"], true);
    assert_eq!(r["frames"]["published"], r["frames"]["captured"], "nothing dropped when nothing is late:\n{stdout}");
    assert_eq!(r["source"]["width"], 768);
    assert_eq!(r["stages"][0]["name"], "capture");
    assert!(r["stages"][0]["latency"]["p50_ms"].as_f64().unwrap() > 0.0);
    for key in ["p50", "p95", "p99", "max"] {
        assert!(stdout.contains(&format!("{key} ms")), "table has {key}:\n{stdout}");
    }
    assert!(stdout.contains("invariant: captured 200 == published 200 + dropped 0 ... OK"), "{stdout}");
    assert!(stdout.contains("frames/s"), "{stdout}");
}

#[test]
fn realtime_budget_shorter_than_a_stage_delay_drops_for_deadline() {
    // 20 fps replay into a stage that needs 80 ms per frame behind a 4-deep fifo: frames wait in the
    // queue longer than the 100 ms budget and are dropped on arrival with reason `deadline`.
    let (r, stdout) = run_json(
        &[
            "--set", "source.fps=20",
            "--set", "source.end_frame=40",
            "--set", "pipeline.budget_ms=100",
            "--set", "test_delay.ms=80",
            "--set", "stages.test_delay.queue={policy=\"fifo\",capacity=4}",
        ],
        "deadline",
    );
    assert_eq!(r["invariant_ok"], true, "{stdout}");
    assert_eq!(r["frames"]["captured"], 40);
    let deadline = r["frames"]["dropped"]["deadline"].as_u64().unwrap();
    assert!(deadline > 0, "expected deadline drops:\n{stdout}");
    assert_eq!(r["stages"][1]["name"], "test_delay");
    assert_eq!(r["stages"][1]["deadline_drops"].as_u64().unwrap(), deadline);
    assert!(r["deadline_misses"].as_u64().unwrap() >= deadline);
}

#[test]
fn realtime_keep_latest_drops_stale_frames_behind_a_slow_stage() {
    let (r, stdout) = run_json(
        &["--set", "source.fps=50", "--set", "source.end_frame=30", "--set", "test_delay.ms=60", "--set", "pipeline.budget_ms=1000"],
        "stale",
    );
    assert_eq!(r["invariant_ok"], true, "{stdout}");
    assert!(r["frames"]["dropped"]["stale"].as_u64().unwrap() > 0, "{stdout}");
    assert_eq!(r["stages"][1]["stale_drops"], r["frames"]["dropped"]["stale"]);
}

#[test]
fn a_corrupt_frame_is_skipped_and_counted() {
    let dir = out_dir("corrupt");
    let seq = dir.join("seq");
    std::fs::create_dir_all(&seq).unwrap();
    for i in 1..=4 {
        let name = format!("{i:06}.jpg");
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/vtest/img1").join(&name), seq.join(&name)).unwrap();
    }
    std::fs::write(seq.join("000003.jpg"), b"\xff\xd8\xff\xe0 this is not a jpeg").unwrap();
    let report = dir.join("r.json");
    let out = perch()
        .args(["run", "--set", "source.pacing=max"])
        .args(CAPTURE_ONLY)
        .arg("--set")
        .arg(format!("source.path=\"{}\"", seq.display()))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["frames"]["captured"], 4);
    assert_eq!(r["frames"]["dropped"]["decode_error"], 1);
    assert_eq!(r["frames"]["published"], 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("000003.jpg"), "the log names the bad file");
}

fn run_err(args: &[&str]) -> String {
    let out = perch().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "expected a usage/config error");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn bad_input_gets_a_clear_error() {
    let e = run_err(&["run", "--config", "configs/replay.toml", "--set", "source.pacing=fastest"]);
    assert!(e.contains("key `source.pacing`") && e.contains("realtime") && e.contains("max"), "{e}");
    let e = run_err(&["run", "--config", "configs/replay.toml", "--set", "source.colour=1"]);
    assert!(e.contains("key `source.colour`") && e.contains("unknown field"), "{e}");
    let e = run_err(&["run", "--config", "configs/replay.toml", "--set", "detect.imgsz=100"]);
    assert!(e.contains("detect.imgsz = 100") && e.contains("multiple of 32"), "{e}");
    let e = run_err(&["run", "--config", "configs/replay.toml", "--set", "detect.model=\"models/nope\""]);
    assert!(e.contains("models/nope"), "{e}");
    let e = run_err(&["run", "--set", "stages.detect.enabled=false"]);
    assert!(e.contains("stages.track.enabled") && e.contains("stages.detect.enabled"), "{e}");
    let e = run_err(&["run", "--set", "source.path=\"/nonexistent/seq\""]);
    assert!(e.contains("/nonexistent/seq") && e.contains("does not exist"), "{e}");
    let empty = out_dir("empty");
    let e = run_err(&["run", "--set", &format!("source.path=\"{}\"", empty.display())]);
    assert!(e.contains("no .jpg/.jpeg/.png images") && e.contains(&empty.display().to_string()), "{e}");
    let e = run_err(&["run", "--config", "configs/nope.toml"]);
    assert!(e.contains("configs/nope.toml"), "{e}");
}

#[test]
fn help_shows_examples() {
    let out = perch().arg("--help").output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("Examples:") && s.contains("perch run --config configs/replay.toml"), "{s}");
}
