//! SIGINT/SIGTERM at random moments of `perch run` — while it starts, while the detector warms up,
//! while frames flow, as the source ends — repeated with a seeded schedule. Every time: the run
//! exits 0 with its report written, the report balances, and `--detections` holds whole JSON
//! lines, one per published frame. A double Ctrl-C exits 130 (the documented fast exit): no report
//! file is left behind, and the detections file still holds only whole lines.
//!
//! Rounds: `PERCH_SIGNAL_ROUNDS` (default 10, the CI size; the long version:
//! `PERCH_SIGNAL_ROUNDS=200 cargo test --test signals`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("signals").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// splitmix64, so a failing schedule can be replayed from its round number.
fn rand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill").args([sig, &child.id().to_string()]).status();
}

/// Wait for the child, failing the test (and killing it) if it does not stop: a hang is the bug.
fn wait(mut child: Child, limit: Duration, what: &str) -> std::process::Output {
    let until = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("{what}: perch did not stop within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Every line parses as one JSON object (no partial line at the end); returns the count.
fn whole_lines(path: &Path, what: &str) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(text.is_empty() || text.ends_with('\n'), "{what}: the detections file ends inside a line");
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: line {} is not whole JSON: {e}", i + 1));
        assert!(v["seq"].is_u64(), "{what}: line {}", i + 1);
    }
    text.lines().count()
}

struct Round {
    what: String,
    args: Vec<String>,
    delay: Duration,
    sig: &'static str,
    twice: bool,
}

fn run_round(r: &Round, dir: &Path) {
    let (report, dets) = (dir.join("report.json"), dir.join("detections.jsonl"));
    let child = Command::new(env!("CARGO_BIN_EXE_perch"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--config", "configs/replay.toml"])
        .args(&r.args)
        .arg("--report")
        .arg(&report)
        .arg("--detections")
        .arg(&dets)
        .env("PERCH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(r.delay);
    signal(&child, r.sig);
    if r.twice {
        std::thread::sleep(Duration::from_millis(30));
        signal(&child, r.sig);
    }
    let out = wait(child, Duration::from_secs(120), &r.what);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    let lines = whole_lines(&dets, &r.what);
    if r.twice && code == Some(130) {
        assert!(!report.exists(), "{}: a second interrupt left a report file behind", r.what);
        return;
    }
    // One signal (or a second one that came after the run had already finished).
    assert_eq!(code, Some(0), "{}: exit {code:?}\n{stderr}", r.what);
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("{}: no report ({e})\n{stderr}", r.what));
    let rep: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: report is not JSON: {e}", r.what));
    assert_eq!(rep["invariant_ok"], true, "{}: {text}", r.what);
    let f = &rep["frames"];
    let dropped: u64 = f["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(f["captured"].as_u64().unwrap(), f["published"].as_u64().unwrap() + dropped, "{}", r.what);
    assert_eq!(lines as u64, f["published"].as_u64().unwrap(), "{}: one detections line per published frame", r.what);
    assert_eq!(rep["output_errors"], serde_json::json!([]), "{}", r.what);
}

/// The runtime alone: starts in milliseconds, so the early delays land in start-up.
const CAPTURE_ONLY: [&str; 6] =
    ["--set", "stages.preprocess.enabled=false", "--set", "stages.detect.enabled=false", "--set", "stages.track.enabled=false"];

#[test]
fn signals_at_random_moments_always_leave_a_report_and_whole_lines() {
    let rounds: u64 = std::env::var("PERCH_SIGNAL_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut state = 0x5eed_u64;
    for i in 0..rounds {
        let x = rand(&mut state);
        let sig = if x & 1 == 0 { "-INT" } else { "-TERM" };
        let (what, args, delay_ms) = match i % 5 {
            // Start-up: before or around the first frame.
            0 => ("start", CAPTURE_ONLY.iter().map(|s| s.to_string()).collect::<Vec<_>>(), 30 + x % 120),
            // Running: a looping realtime replay.
            1 => ("running", [&CAPTURE_ONLY[..], &["--set", "source.loop=true", "--set", "source.fps=50"]].concat().iter().map(|s| s.to_string()).collect(), 200 + x % 1500),
            // Shutdown: a 30-frame max-speed replay that ends by itself around the signal.
            2 => ("shutdown", [&CAPTURE_ONLY[..], &["--set", "source.pacing=max", "--set", "source.end_frame=30"]].concat().iter().map(|s| s.to_string()).collect(), 50 + x % 400),
            // The detector loading and warming up (or just started), at 320 to keep rounds short.
            3 => ("warm-up", ["--set", "detect.imgsz=320", "--set", "source.end_frame=40", "--set", "pipeline.budget_ms=5000"].iter().map(|s| s.to_string()).collect(), 100 + x % 3000),
            // Twice, quickly: the fast exit.
            _ => ("double", [&CAPTURE_ONLY[..], &["--set", "source.loop=true"]].concat().iter().map(|s| s.to_string()).collect(), 150 + x % 500),
        };
        let round = Round {
            what: format!("round {i} ({what}, {sig} after {delay_ms} ms)"),
            args,
            delay: Duration::from_millis(delay_ms),
            sig,
            twice: what == "double",
        };
        eprintln!("{}", round.what);
        run_round(&round, &out_dir(&format!("r{i}")));
    }
}
