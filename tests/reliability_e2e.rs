//! Regression tests of the binary for issue 16's defects: broken frames are never published as
//! good ones, a tiny file cannot kill the run, bad durations are refused by name, results are
//! never lost silently, and a resolution change keeps the tracker publishing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn perch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_perch"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reliability").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn vtest(n: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("datasets/vtest/img1/{n:06}.jpg"))
}

const CAPTURE_ONLY: [&str; 8] = [
    "--set", "stages.preprocess.enabled=false",
    "--set", "stages.detect.enabled=false",
    "--set", "stages.track.enabled=false",
    "--set", "source.pacing=max",
];

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A 69-byte PNG whose header claims 50000x50000 (it once aborted the run allocating 7.5 GB).
fn huge_png() -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend(kind);
        c.extend(data);
        c.extend(crc32(&c[4..]).to_be_bytes());
        c
    };
    let mut ihdr = Vec::new();
    ihdr.extend(50_000u32.to_be_bytes());
    ihdr.extend(50_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// Defects 1 and 2 in a replay: a half-written JPEG, a JPEG cut at 300 bytes and a tiny PNG that
/// claims 50000x50000 are each a `decode_error` naming the file; the good frames are published.
#[test]
fn truncated_and_oversized_frames_are_decode_errors_naming_the_file() {
    let dir = out_dir("bad_frames");
    let seq = dir.join("seq");
    std::fs::create_dir_all(&seq).unwrap();
    for i in 1..=6 {
        std::fs::copy(vtest(i), seq.join(format!("{i:06}.jpg"))).unwrap();
    }
    let full = std::fs::read(vtest(3)).unwrap();
    std::fs::write(seq.join("000003.jpg"), &full[..full.len() / 2]).unwrap();
    std::fs::write(seq.join("000004.jpg"), &full[..300]).unwrap();
    std::fs::remove_file(seq.join("000005.jpg")).unwrap();
    std::fs::write(seq.join("000005.png"), huge_png()).unwrap();
    let rep = dir.join("r.json");
    let out = perch()
        .arg("run")
        .args(CAPTURE_ONLY)
        .arg("--set")
        .arg(format!("source.path=\"{}\"", seq.display()))
        .arg("--report")
        .arg(&rep)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let r = report(&rep);
    assert_eq!(r["frames"]["captured"], 6);
    assert_eq!(r["frames"]["dropped"]["decode_error"], 3, "{err}");
    assert_eq!(r["frames"]["published"], 3);
    assert_eq!(r["invariant_ok"], true);
    for name in ["000003.jpg", "000004.jpg", "000005.png"] {
        assert!(err.contains(name), "the log names {name}:\n{err}");
    }
    assert!(err.contains("ends early") && err.contains("max_pixels"), "{err}");
}

/// Defect 1 for `perch detect`: a truncated file fails with a message, exit non-zero.
#[test]
fn perch_detect_fails_a_truncated_file() {
    let dir = out_dir("detect_truncated");
    let full = std::fs::read(vtest(3)).unwrap();
    let cut = dir.join("x.jpg");
    std::fs::write(&cut, &full[..300]).unwrap();
    let out = perch().arg("detect").arg(&cut).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("x.jpg") && err.contains("ends early"), "{err}");
    let png = dir.join("huge.png");
    std::fs::write(&png, huge_png()).unwrap();
    let out = perch().arg("detect").arg(&png).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("huge.png") && stderr(&out).contains("50000x50000"), "{}", stderr(&out));
}

/// Defect 3: non-finite, zero, negative and overflowing durations are config errors naming the key.
#[test]
fn bad_durations_are_refused_by_name() {
    for (key, value) in [
        ("pipeline.budget_ms", "inf"),
        ("pipeline.budget_ms", "nan"),
        ("pipeline.budget_ms", "0"),
        ("pipeline.budget_ms", "-5"),
        ("stages.detect.budget_ms", "inf"),
        ("pipeline.budget_ms", "1e22"),
        ("source.fps", "nan"),
        ("test_delay.ms", "1e22"),
    ] {
        let out = perch().args(["run", "--set", &format!("{key}={value}")]).args(CAPTURE_ONLY).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}={value}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{key}={value}: {}", stderr(&out));
    }
}

/// Defect 4: a failed `--detections` write fails the run (exit 4) and the report says what was lost.
#[test]
fn a_failed_detections_write_fails_the_run() {
    let dir = out_dir("dev_full");
    let rep = dir.join("r.json");
    let out = perch()
        .args(["run", "--config", "configs/replay.toml", "--set", "source.end_frame=11", "--detections", "/dev/full", "--report"])
        .arg(&rep)
        .args(CAPTURE_ONLY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("11 of 11 lines lost"), "{}", stderr(&out));
    let r = report(&rep);
    assert_eq!(r["taps"]["detections_jsonl"]["written"], 0);
    assert_eq!(r["taps"]["detections_jsonl"]["lost"], 11);
    assert!(r["output_errors"][0].as_str().unwrap().contains("/dev/full"), "{r}");
}

/// Defect 5: unwritable destinations fail before the run starts; one file for both is refused.
#[test]
fn result_destinations_are_checked_before_the_run() {
    let out = perch().args(["run", "--report", "/proc/perch-nope/r.json"]).args(CAPTURE_ONLY).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/proc/perch-nope"), "{}", stderr(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("invariant"), "the pipeline must not have run");
    let dir = out_dir("same_path");
    let p = dir.join("out.json");
    let out = perch().args(["run", "--report"]).arg(&p).arg("--detections").arg(&p).args(CAPTURE_ONLY).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("same file"), "{}", stderr(&out));
    // Folders are created up front.
    let deep = dir.join("a/b/c");
    let out = perch()
        .args(["run", "--set", "source.end_frame=3", "--report"])
        .arg(deep.join("r.json"))
        .arg("--detections")
        .arg(deep.join("d.jsonl"))
        .args(CAPTURE_ONLY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(deep.join("d.jsonl")).unwrap().lines().count(), 3);
}

/// Item 7: a seqinfo.ini without `[Sequence]` says so, naming the file.
#[test]
fn a_seqinfo_without_a_sequence_section_is_named() {
    let dir = out_dir("seqinfo");
    std::fs::copy(vtest(1), dir.join("000001.jpg")).unwrap();
    std::fs::write(dir.join("seqinfo.ini"), "imDir=.\nframeRate=10\n").unwrap();
    let out = perch().arg("run").arg("--set").arg(format!("source.path=\"{}\"", dir.display())).args(CAPTURE_ONLY).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("seqinfo.ini") && stderr(&out).contains("[Sequence]"), "{}", stderr(&out));
}

/// Item 7: five vtest frames at 768x576, then one at 384x288. The detector finds the people on
/// the small frame too; the tracker once published 0 of them (every box of the new pixel grid
/// stayed tentative). Now it publishes exactly what `perch detect` finds on that frame.
#[test]
fn a_resolution_change_mid_sequence_keeps_publishing_tracks() {
    let dir = out_dir("resolution");
    let seq = dir.join("seq");
    std::fs::create_dir_all(&seq).unwrap();
    for i in 1..=5 {
        std::fs::copy(vtest(i), seq.join(format!("{i:06}.jpg"))).unwrap();
    }
    let small = image::open(vtest(6)).unwrap().resize_exact(384, 288, image::imageops::FilterType::Triangle);
    small.save(seq.join("000006.png")).unwrap();
    let dets = dir.join("d.jsonl");
    let rep = dir.join("r.json");
    let common = ["--set", "detect.imgsz=320", "--set", "source.pacing=max", "--set", "pipeline.budget_ms=600000"];
    let out = perch()
        .args(["run", "--config", "configs/replay.toml"])
        .args(common)
        .arg("--set")
        .arg(format!("source.path=\"{}\"", seq.display()))
        .arg("--detections")
        .arg(&dets)
        .arg("--report")
        .arg(&rep)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&dets).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6);
    let r = report(&rep);
    let track = r["stages"].as_array().unwrap().iter().find(|s| s["name"] == "track").unwrap();
    assert_eq!(track["counters"]["resolution_changes"], 1, "{r}");
    assert!(stderr(&out).contains("384x288"), "the change is logged once: {}", stderr(&out));
    let detect = perch().args(["detect", "--imgsz", "320", "--json"]).arg(seq.join("000006.png")).output().unwrap();
    assert!(detect.status.success(), "{}", stderr(&detect));
    let found: serde_json::Value = serde_json::from_slice(&detect.stdout).unwrap();
    let found = found["detections"].as_array().unwrap().len();
    let published = lines[5]["detections"].as_array().unwrap();
    assert!(found >= 2, "vtest frame 6 shows several people; the detector found {found}");
    assert_eq!(published.len(), found, "the tracker publishes every detection of the new size");
    let before: std::collections::HashSet<u64> =
        lines[..5].iter().flat_map(|l| l["detections"].as_array().unwrap().iter().map(|d| d["track_id"].as_u64().unwrap())).collect();
    assert!(published.iter().all(|d| !before.contains(&d["track_id"].as_u64().unwrap())), "ids are not reused");
}
