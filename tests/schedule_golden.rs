//! Golden end-to-end test of the `async` schedule on the replay: the detector (YOLOv12n @320) is
//! given a virtual latency of 90 ms on the replay's 30 fps source clock, so which frames it runs
//! on and which frame each result lands with depend on the frame times only, not on this machine.
//! Same inputs → the same published boxes, run after run, and as in `tests/golden/`.
//!
//! `PERCH_BLESS=1 cargo test --test schedule_golden` rewrites the golden file (review the diff).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const GOLDEN: &str = "tests/golden/schedule_async_vtest_320_90ms.jsonl";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(name: &str) -> (Vec<Value>, Value) {
    run_with(name, &["--set", "detect.schedule=\"async\"", "--set", "detect.virtual_latency_ms=90", "--set", "source.end_frame=30"])
}

fn run_with(name: &str, schedule: &[&str]) -> (Vec<Value>, Value) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schedule_golden").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let (dets, report) = (dir.join("dets.jsonl"), dir.join("report.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_perch"))
        .current_dir(repo())
        .args(["run", "--config", "configs/replay.toml"])
        .args(["--set", "source.pacing=\"max\"", "--set", "source.fps=30", "--set", "detect.imgsz=320"])
        .args(schedule)
        .args(["--set", "pipeline.budget_ms=600000"])
        .arg("--detections")
        .arg(&dets)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let lines = std::fs::read_to_string(&dets).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (lines, serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap())
}

/// Equal up to float noise of the network (boxes 0.5 px, scores and ms 0.01); everything else exact.
fn same(a: &Value, b: &Value, path: &str) -> Result<(), String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let tol = if path.contains("bbox") { 0.5 } else { 0.01 };
            ((x - y).abs() <= tol).then_some(()).ok_or(format!("{path}: {x} vs {y}"))
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Err(format!("{path}: {} vs {} entries", x.len(), y.len()));
            }
            x.iter().zip(y).enumerate().try_for_each(|(i, (x, y))| same(x, y, &format!("{path}[{i}]")))
        }
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() {
                return Err(format!("{path}: keys {:?} vs {:?}", x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>()));
            }
            x.iter().try_for_each(|(k, v)| same(v, y.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}")))
        }
        _ => (a == b).then_some(()).ok_or(format!("{path}: {a} vs {b}")),
    }
}

#[test]
fn async_schedule_on_the_virtual_clock_publishes_the_same_boxes_every_time() {
    let (first, report) = run("a");
    let (second, _) = run("b");
    assert_eq!(first.len(), 30, "every frame published");
    for (i, (a, b)) in first.iter().zip(&second).enumerate() {
        same(a, b, &format!("line {i}")).unwrap_or_else(|e| panic!("run to run: {e}"));
    }

    // The schedule itself: frame 0's result (computed 0..90 ms) lands with frame 3 (100 ms), which
    // the detector takes next, and so on; frames before the first result have no boxes.
    let d = &report["detection"];
    assert_eq!((d["fresh"].as_u64(), d["without"].as_u64(), d["predicted"].as_u64()), (Some(0), Some(3), Some(27)), "{d}");
    for line in &first {
        let seq = line["seq"].as_u64().unwrap();
        assert_eq!(line["fresh"], false, "async: no frame waits for its own detection");
        let age = &line["detection_age"];
        if seq < 3 {
            assert!(age.is_null() && line["detections"].as_array().unwrap().is_empty(), "{line}");
            continue;
        }
        // The newest detection behind frame seq is the one computed on the last multiple of 3
        // at least 3 frames back.
        let expect = 3 + seq % 3;
        assert_eq!(age["frames"].as_u64(), Some(expect), "{line}");
        assert!((age["ms"].as_f64().unwrap() - expect as f64 * 1000.0 / 30.0).abs() < 0.01, "{line}");
        let boxes = line["detections"].as_array().unwrap();
        assert!(!boxes.is_empty(), "vtest always shows people: {line}");
        for b in boxes {
            assert_eq!(b["predicted"], true, "{b}");
            assert!(b["track_id"].as_u64().is_some() && b["age_frames"].as_u64().unwrap() >= expect, "{b}");
        }
    }
    let track = report["stages"].as_array().unwrap().iter().find(|s| s["name"] == "track").unwrap();
    assert_eq!(track["counters"]["late_applied"], 9, "results of frames 0, 3, ..., 24 applied at their frame");
    assert_eq!(report["detection"]["late_unused"], 1, "frame 27's result is still in flight at the end");

    let golden = repo().join(GOLDEN);
    if std::env::var_os("PERCH_BLESS").is_some() {
        let text: String = first.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&golden, text).unwrap();
        eprintln!("wrote {}", golden.display());
        return;
    }
    let want: Vec<Value> = std::fs::read_to_string(&golden)
        .unwrap_or_else(|e| panic!("{}: {e} (PERCH_BLESS=1 writes it)", golden.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(want.len(), first.len());
    for (i, (got, want)) in first.iter().zip(&want).enumerate() {
        same(got, want, &format!("line {i}")).unwrap_or_else(|e| panic!("against {GOLDEN}: {e}"));
    }
}

/// `interval = 2`: the detector runs inline on frames 0, 3, 6, ...; the two frames after each are
/// published at once with the tracker's predictions, one and two frames old.
#[test]
fn interval_schedule_detects_every_third_frame_and_predicts_the_rest() {
    let (lines, report) = run_with("interval", &["--set", "detect.schedule=\"interval\"", "--set", "detect.interval=2", "--set", "source.end_frame=12"]);
    assert_eq!(lines.len(), 12);
    for line in &lines {
        let seq = line["seq"].as_u64().unwrap();
        assert_eq!(line["fresh"], seq % 3 == 0, "{line}");
        assert_eq!(line["detection_age"]["frames"].as_u64(), Some(seq % 3), "{line}");
        for b in line["detections"].as_array().unwrap() {
            assert_eq!(b["predicted"], seq % 3 != 0, "{b}");
        }
    }
    let d = &report["detection"];
    assert_eq!((d["fresh"].as_u64(), d["predicted"].as_u64(), d["without"].as_u64()), (Some(4), Some(8), Some(0)), "{d}");
    let detect = report["stages"].as_array().unwrap().iter().find(|s| s["name"] == "detect").unwrap();
    assert_eq!((detect["counters"]["inline"].as_u64(), detect["counters"]["passed_without"].as_u64()), (Some(4), Some(8)));
}
