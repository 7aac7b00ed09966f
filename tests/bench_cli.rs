//! `perch bench pipeline | sustained | cold-start | compare` through the binary, on the committed
//! vtest replay at 320 (short steps: these check what the reports say and that they agree with
//! the run reports they came from, not how fast anything is).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench_cli").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn perch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_perch")).current_dir(repo()).env_remove("PERCH_HOME").args(args).output().unwrap()
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.len() > 5000 && b.starts_with(b"\x89PNG"))
}

/// Every step's counts against its own run report: captured = published + dropped (+ shutdown),
/// the ledger balanced, the drop fraction what the counts say, one latency sample per published frame.
fn check_step(s: &Value) {
    let u = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    let r = &s["report"];
    assert_eq!(r["schema"], "perch.report/2");
    assert_eq!(r["invariant_ok"], true);
    assert_eq!(u("captured"), r["frames"]["captured"].as_u64().unwrap());
    assert_eq!(u("published"), r["frames"]["published"].as_u64().unwrap());
    let dropped_in_report: u64 = r["frames"]["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(u("dropped") + u("shutdown"), dropped_in_report);
    assert_eq!(u("captured"), u("published") + u("dropped") + u("shutdown"));
    let counted = (u("captured") - u("shutdown")) as f64;
    let frac = s["drop_fraction"].as_f64().unwrap();
    assert!((frac - if counted > 0.0 { u("dropped") as f64 / counted } else { 0.0 }).abs() < 1e-9, "{s}");
    if u("published") > 0 {
        assert_eq!(s["end_to_end_ms"]["n"].as_u64(), Some(u("published")));
        let capture = s["stages"].as_array().unwrap().iter().find(|x| x["stage"] == "capture").unwrap();
        assert_eq!(capture["latency_ms"]["n"].as_u64(), Some(u("published")));
        assert!(u("fresh") <= u("detector_results") && u("detector_results") <= u("published"));
    }
    let threads = s["machine"]["threads"].as_array().unwrap();
    assert!(threads.iter().any(|t| t["thread"] == "perch-detect" && t["cpu_s"].as_f64().unwrap() > 0.0), "{threads:?}");
    assert!(s["machine"]["peak_rss_mib"].as_f64().unwrap() > 10.0);
}

#[test]
fn pipeline_sweep_reports_the_peak_rate_consistently() {
    let out = scratch("pipeline");
    let o = out.to_str().unwrap();
    let plots = out.join("plots");
    // 3 fps keeps up at 320 even in a debug build; 400 fps (2.5 ms per frame) never does.
    let text = ok(&perch(&[
        "bench", "pipeline", "--set", "detect.imgsz=320", "--rates", "3,400", "--step-s", "2", "--out", o, "--plots",
        plots.to_str().unwrap(), "--quiet",
    ]));
    assert!(text.contains("Highest input rate with < 5 % dropped: 3.0 fps"), "{text}");
    let b = json(&out.join("bench_pipeline.json"));
    assert_eq!(b["schema"], "perch.bench_pipeline/1");
    assert_eq!(b["peak_rate_fps"].as_f64(), Some(3.0));
    assert_eq!(b["capped"], false);
    let steps = b["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for s in steps {
        check_step(s);
    }
    assert!(steps[1]["drop_fraction"].as_f64().unwrap() >= 0.05, "400 fps passed: {}", steps[1]);
    assert_eq!(b["input"]["sha256"].as_str().map(str::len), Some(64));
    assert!(b["input"]["files"].as_u64().unwrap() >= 200);
    assert!(b["machine"]["cpu"].is_string() && b["build"]["target_arch"].is_string() && b["kernels"]["int8"].is_string());
    assert!(out.join("bench_pipeline.md").exists());
    for p in ["drop_vs_rate.png", "latency_cdf.png", "latency_over_time.png"] {
        assert!(is_png(&plots.join(p)), "{p}");
    }
}

#[test]
fn pipeline_search_stops_at_its_cap() {
    let out = scratch("search");
    let text = ok(&perch(&[
        "bench", "pipeline", "--set", "detect.imgsz=320", "--start-fps", "1", "--max-fps", "2", "--step-s", "2", "--out",
        out.to_str().unwrap(), "--quiet",
    ]));
    let b = json(&out.join("bench_pipeline.json"));
    let rates: Vec<f64> = b["steps"].as_array().unwrap().iter().map(|s| s["rate_fps"].as_f64().unwrap()).collect();
    assert_eq!(rates, [1.0, 2.0], "{text}");
    assert_eq!((b["capped"].as_bool(), b["peak_rate_fps"].as_f64()), (Some(true), Some(2.0)));
    assert!(text.contains("the peak is at least this"), "{text}");
}

#[test]
fn sustained_windows_add_up_and_energy_is_never_invented() {
    let out = scratch("sustained");
    let plots = out.join("plots");
    let text = ok(&perch(&[
        "bench", "sustained", "--set", "detect.imgsz=320", "--rate", "5", "--minutes", "0.1", "--window-s", "2", "--out",
        out.to_str().unwrap(), "--plots", plots.to_str().unwrap(), "--quiet",
    ]));
    let b = json(&out.join("bench_sustained.json"));
    assert_eq!(b["schema"], "perch.bench_sustained/1");
    check_step(&b["step"]);
    let w = b["windows"].as_array().unwrap();
    assert_eq!(w.len(), 3, "{text}");
    let in_windows: u64 = w.iter().map(|w| w["published"].as_u64().unwrap()).sum();
    assert!(in_windows <= b["step"]["published"].as_u64().unwrap());
    assert!(b["last_over_first"].as_f64().unwrap() > 0.0);
    let method = &b["step"]["machine"]["energy_method"];
    if method.is_null() {
        // No readable counter here: every energy figure says so instead of showing a number.
        assert!(b["energy_per_frame_mj"].is_null() && w.iter().all(|w| w["energy_j"].is_null()));
        assert!(text.contains("energy per frame over the run: not available"), "{text}");
    } else {
        assert!(b["energy_per_frame_mj"].as_f64().unwrap() > 0.0);
    }
    for p in ["sustained_latency_over_time.png", "sustained_latency_cdf.png"] {
        assert!(is_png(&plots.join(p)), "{p}");
    }
}

#[test]
fn cold_start_times_fresh_processes_and_names_the_parts() {
    let out = scratch("cold");
    let text = ok(&perch(&["bench", "cold-start", "--set", "detect.imgsz=320", "--runs", "2", "--frames", "2", "--out", out.to_str().unwrap(), "--quiet"]));
    let b = json(&out.join("bench_cold_start.json"));
    assert_eq!(b["schema"], "perch.bench_cold_start/1");
    let runs = b["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{text}");
    for r in runs {
        let first = r["first_detection_ms"].as_f64().unwrap();
        let (load, warm) = (r["model_load_ms"].as_f64().unwrap(), r["warm_up_ms"].as_f64().unwrap());
        assert!(load > 0.0 && warm > 0.0 && load + warm < first, "{r}");
        assert!(first <= r["exit_ms"].as_f64().unwrap());
    }
    assert!(text.contains("median exec → first detection"), "{text}");
}

#[test]
fn bad_bench_input_names_the_option() {
    let r = perch(&["bench", "pipeline", "--max-drop", "5", "--rates", "1", "--out", scratch("bad1").to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--max-drop must be between 0 and 1"));
    let r = perch(&["bench", "pipeline", "--set", "source.kind=\"camera\"", "--rates", "1", "--out", scratch("bad2").to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("paces a replay"), "{}", String::from_utf8_lossy(&r.stderr));
    let r = perch(&["bench", "sustained", "--minutes", "0", "--out", scratch("bad3").to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--minutes must be a positive number"));
    let r = perch(&["bench", "compare", "--onnx", "nowhere/model.onnx", "--out", scratch("bad4").to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("--onnx") && err.contains("fetch-fixtures.sh"), "{err}");
}

/// The framework comparison against a real ONNX Runtime (the detect venv and the fetched export;
/// CI has both, elsewhere the test skips loudly unless PERCH_REQUIRE_FIXTURES=1).
#[test]
fn compare_against_onnx_runtime() {
    let (py, onnx) = (repo().join(".venv-detect/bin/python"), repo().join(".cache/fixtures/yolov12n.onnx"));
    if !py.exists() || !onnx.exists() {
        perch_pipeline::fixtures::missing("the detect venv and .cache/fixtures/yolov12n.onnx (nodes/detect/ci.sh sets both up)");
        return;
    }
    let out = scratch("compare");
    let text = ok(&perch(&[
        "bench", "compare", "--runs", "2", "--rounds", "2", "--warmup", "0", "--calib-frames", "4", "--agreement-frames", "1",
        "--out", out.to_str().unwrap(), "--quiet",
    ]));
    let b = json(&out.join("bench_compare.json"));
    assert_eq!(b["schema"], "perch.bench_compare/1");
    let ratios = b["ratios"].as_array().unwrap();
    let precisions: Vec<&str> = ratios.iter().map(|r| r["precision"].as_str().unwrap()).collect();
    assert_eq!(precisions, ["f32", "int8"], "{text}");
    for r in ratios {
        let (p, o) = (r["perch_median_ms"].as_f64().unwrap(), r["peer_median_ms"].as_f64().unwrap());
        assert!((r["ratio"].as_f64().unwrap() - p / o).abs() < 1e-9);
        assert_eq!((r["n_perch"].as_u64(), r["n_peer"].as_u64()), (Some(2), Some(2)));
    }
    assert!(b["table"]["peer"]["onnxruntime"].is_string(), "the ORT version is named");
}
