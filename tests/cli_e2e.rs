//! The everyday experience, end to end through the binary: `perch detect` over folders, globs and
//! bad files, annotated output (`--save`, `--save-video`), the status line against the report,
//! and running from another directory (paths, the perch home, the default job).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn frame(n: u32) -> PathBuf {
    repo().join(format!("datasets/vtest/img1/{n:06}.jpg"))
}

/// A fresh folder for one test, also used as the current directory: not the repository.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_e2e").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn perch_in(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_perch"));
    c.current_dir(cwd).env_remove("PERCH_HOME").env_remove("PERCH_LOG");
    c
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

const CAPTURE_ONLY: [&str; 6] =
    ["--set", "stages.preprocess.enabled=false", "--set", "stages.detect.enabled=false", "--set", "stages.track.enabled=false"];

fn rgb(path: &Path) -> image::RgbImage {
    image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into_rgb8()
}

/// Mean absolute difference of two images over the pixels `pick` selects.
fn mean_diff(a: &image::RgbImage, b: &image::RgbImage, pick: impl Fn(u32, u32) -> bool) -> f64 {
    let (mut sum, mut n) = (0u64, 0u64);
    for (x, y, p) in a.enumerate_pixels() {
        if pick(x, y) {
            let q = b.get_pixel(x, y);
            sum += (0..3).map(|c| (p[c] as i32 - q[c] as i32).unsigned_abs() as u64).sum::<u64>();
            n += 3;
        }
    }
    sum as f64 / n.max(1) as f64
}

/// The saved picture differs from the input along the bottom edge (the outline) of every box in
/// `big`, and hardly at all (JPEG noise) away from every box in `all` and its label.
fn assert_boxes_drawn(original: &Path, annotated: &Path, all: &[[f64; 4]]) {
    let (a, b) = (rgb(original), rgb(annotated));
    assert_eq!(a.dimensions(), b.dimensions());
    // Boxes big enough that another box's label cannot cover their whole bottom edge.
    let big: Vec<[f64; 4]> = all.iter().copied().filter(|b| b[2] - b[0] > 20.0 && b[3] - b[1] > 40.0).collect();
    assert!(!big.is_empty(), "no box to check in {}", annotated.display());
    for [x1, _, x2, y2] in big {
        let (x1, x2, y) = (x1.round() as u32, x2.round() as u32, (y2.round() as u32).saturating_sub(1).min(a.height() - 1));
        let d = mean_diff(&a, &b, |x, yy| yy == y && x > x1 && x + 1 < x2);
        assert!(d > 40.0, "{}: the outline along y={y}, x={x1}..{x2} is not drawn (mean diff {d:.1})", annotated.display());
    }
    // A label is at most ~150 px wide and sits above its box (shifted left at the right edge).
    let far = |x: u32, y: u32| {
        let (x, y) = (x as f64, y as f64);
        all.iter().all(|[x1, y1, x2, y2]| x < x1 - 200.0 || x > x2 + 160.0 || y < y1 - 40.0 || y > y2 + 10.0)
    };
    let d = mean_diff(&a, &b, far);
    assert!(d < 6.0, "{}: pixels far from every box changed (mean diff {d:.1})", annotated.display());
}

#[test]
fn detect_saves_annotated_images_with_boxes_where_the_detections_are() {
    let dir = scratch("detect_save");
    let out = perch_in(&dir).args(["detect", "--json", "--save"]).arg(frame(150)).arg(frame(1)).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // The default folder is Ultralytics': runs/detect/predict, then predict2.
    let saved = dir.join("runs/detect/predict");
    assert!(stderr.contains("results saved to runs/detect/predict"), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for (line, n) in lines.iter().zip([150, 1]) {
        let boxes: Vec<[f64; 4]> = line["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let b = d["bbox"].as_array().expect("`bbox`, the name --detections uses too");
                [0, 1, 2, 3].map(|i| b[i].as_f64().unwrap())
            })
            .collect();
        assert_boxes_drawn(&frame(n), &saved.join(format!("{n:06}.jpg")), &boxes);
    }
    assert!(stderr.contains("summary: 2 images,") && stderr.contains("person"), "{stderr}");
    let again = perch_in(&dir).args(["detect", "--save"]).arg(frame(1)).output().unwrap();
    assert!(again.status.success());
    assert!(dir.join("runs/detect/predict2/000001.jpg").is_file(), "a second run counts up");
}

#[test]
fn detect_reports_each_bad_input_processes_the_rest_and_fails_at_the_end() {
    let dir = scratch("detect_errors");
    let folder = dir.join("seq");
    std::fs::create_dir_all(&folder).unwrap();
    for (name, n) in [("10.jpg", 3), ("2.jpg", 2), ("1.jpg", 1)] {
        std::fs::copy(frame(n), folder.join(name)).unwrap();
    }
    std::fs::write(dir.join("corrupt.jpg"), b"\xff\xd8\xff\xe0 this is not a jpeg").unwrap();
    let out = perch_in(&dir)
        .args(["detect", "--json", "seq", "missing.jpg", "corrupt.jpg", "nothing-*.png"])
        .arg(repo().join("datasets/vtest/img1/00000[4-5].jpg"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "bad inputs fail the command at the end:\n{stderr}");
    let images: Vec<String> =
        stdout.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["image"].as_str().unwrap().to_string()).collect();
    let names: Vec<&str> = images.iter().map(|p| p.rsplit('/').next().unwrap()).collect();
    // A folder in natural order (1, 2, 10), then the glob's matches; the bad inputs are skipped.
    assert_eq!(names, ["1.jpg", "2.jpg", "10.jpg", "000004.jpg", "000005.jpg"], "{stdout}");
    for bad in ["missing.jpg: no such file", "corrupt.jpg", "nothing-*.png: no image files match"] {
        assert!(stderr.contains(bad), "stderr names {bad}:\n{stderr}");
    }
    assert!(stderr.contains("summary: 5 images") && stderr.contains("3 failed"), "{stderr}");
}

/// The status line, with stderr a pipe: plain lines (no escape codes) and a last line whose
/// figures are the report's.
#[test]
fn the_status_line_matches_the_report() {
    let dir = scratch("status");
    let out = perch_in(&dir)
        .args(["run", "--config", "replay"])
        .args(CAPTURE_ONLY)
        .args(["--set", "test_delay.ms=30", "--set", "source.fps=50", "--set", "source.end_frame=120"])
        .args(["--status-every", "0.5", "--report", "r.json"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains('\x1b'), "no ANSI escape codes when stderr is not a terminal:\n{stderr:?}");
    let periodic = stderr.lines().filter(|l| l.starts_with("perch: ")).count();
    assert!(periodic >= 2, "a line every 0.5 s of a ~2.4 s run:\n{stderr}");
    let last = stderr.lines().find(|l| l.starts_with("perch done ")).unwrap_or_else(|| panic!("no final line:\n{stderr}"));
    let r = json(&dir.join("r.json"));
    let field = |name: &str| -> String {
        let rest = last.split(name).nth(1).unwrap_or_else(|| panic!("no `{name}` in {last}"));
        rest.split_whitespace().next().unwrap().to_string()
    };
    let frames = &r["frames"];
    assert_eq!(field("published "), format!("{}/{}", frames["published"], frames["captured"]), "{last}");
    assert_eq!(field("dropped stale "), frames["dropped"]["stale"].to_string(), "{last}");
    let stage = r["stages"].as_array().unwrap().iter().find(|s| s["name"] == "test_delay").unwrap();
    assert_eq!(field("test_delay p50 "), format!("{:.2}", stage["latency"]["p50_ms"].as_f64().unwrap()), "{last}");
    assert_eq!(field("e2e p99 "), format!("{:.2}", r["end_to_end"]["p99_ms"].as_f64().unwrap()), "{last}");
    let fps_out: f64 = field("out ").parse().unwrap();
    let fps = r["fps"].as_f64().unwrap();
    assert!((fps_out - fps).abs() <= 0.05 * fps + 0.1, "status {fps_out} fps vs report {fps}: {last}");
    assert!(stdout.contains("invariant: captured 120"), "{stdout}");
    // --quiet: no status line.
    let quiet = perch_in(&dir).args(["run", "--config", "replay", "--quiet"]).args(CAPTURE_ONLY).args(["--set", "source.end_frame=3"]).output().unwrap();
    assert!(quiet.status.success());
    assert!(!text(&quiet).1.contains("perch done"), "{}", text(&quiet).1);
}

/// `perch run` with no config, from a directory that is not the repository: the default job
/// (configs/replay.toml's budget and stages), models and data from the perch home. Then the published
/// frames saved as annotated JPEGs, with boxes where `--detections` says they are.
#[test]
fn no_config_from_another_directory_runs_the_default_job() {
    let dir = scratch("default_job");
    let out = perch_in(&dir).args(["run", "--set", "source.end_frame=20", "--quiet", "--report", "r.json"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let r = json(&dir.join("r.json"));
    assert_eq!(r["budget_ms"], 1500.0, "the default job's budget");
    let names: Vec<&str> = r["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["capture", "preprocess", "detect", "track"]);
    assert_eq!(r["frames"]["captured"], 20);
    assert_eq!(r["invariant_ok"], true);
    // How many frames are published depends on the machine's load (~85 ms per frame idle, over a
    // second on a loaded 2-core box, when most are `stale`); the model was found and ran.
    assert!(r["stages"][2]["counters"]["detections"].as_u64().unwrap() >= 1, "{stdout}");

    // Every frame through (max pacing, no deadline) into a JPEG sequence.
    let out = perch_in(&dir)
        .args(["run", "--quiet", "--set", "source.end_frame=4", "--set", "source.pacing=max", "--set", "pipeline.budget_ms=600000"])
        .args(["--report", "r2.json", "--detections", "d.jsonl", "--save-video", "frames"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let r = json(&dir.join("r2.json"));
    assert_eq!(r["frames"]["published"], 4, "{stdout}");
    assert_eq!(r["taps"]["video"]["written"], 4, "{stdout}");
    let lines = std::fs::read_to_string(dir.join("d.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    let boxes: Vec<[f64; 4]> = last["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| [0, 1, 2, 3].map(|i| d["bbox"][i].as_f64().unwrap()))
        .collect();
    let seq = last["seq"].as_u64().unwrap();
    let index = last["source_index"].as_u64().unwrap();
    assert_boxes_drawn(&frame(index as u32 + 1), &dir.join(format!("frames/{seq:06}.jpg")), &boxes);
}

#[test]
fn configs_and_their_paths_work_from_any_directory() {
    let dir = scratch("paths");
    // By path (relative to the cwd would fail: its paths are relative to the file), and by name.
    for config in [repo().join("configs/replay.toml").display().to_string(), "nano".to_string()] {
        let out = perch_in(&dir).args(["run", "--quiet", "--config", &config]).args(CAPTURE_ONLY).args(["--set", "source.end_frame=3"]).output().unwrap();
        assert!(out.status.success(), "--config {config}: {}", text(&out).1);
    }
    // A config elsewhere with a wrong relative path: the error says against which folder it resolved.
    std::fs::write(dir.join("job.toml"), "[source]\npath = \"../seq\"\n").unwrap();
    let out = perch_in(&dir).args(["run", "--config", "job.toml"]).args(CAPTURE_ONLY).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out).1;
    assert!(e.contains("key `source.path` = \"../seq\"") && e.contains(&dir.display().to_string()), "{e}");
    // Shorthand flags are --set keys; giving both for one key is an error.
    let out = perch_in(&dir).args(["run", "--conf", "0.5", "--set", "detect.conf=0.3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("--conf and --set detect.conf=0.3 both set `detect.conf`"), "{}", text(&out).1);
}

/// The install story: an executable in `<prefix>/bin` finds `<prefix>/share/perch`, and
/// `PERCH_HOME` overrides every other place.
#[test]
fn the_perch_home_is_found_next_to_the_executable_or_from_perch_home() {
    let dir = scratch("home");
    let prefix = dir.join("prefix");
    let seq = prefix.join("share/perch/datasets/vtest");
    std::fs::create_dir_all(seq.join("img1")).unwrap();
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::copy(repo().join("datasets/vtest/seqinfo.ini"), seq.join("seqinfo.ini")).unwrap();
    for n in 1..=3 {
        std::fs::copy(frame(n), seq.join(format!("img1/{n:06}.jpg"))).unwrap();
    }
    // A hard link (or a copy), so the executable's own path is under the prefix (a symlink resolves back).
    let exe = prefix.join("bin/perch");
    std::fs::hard_link(env!("CARGO_BIN_EXE_perch"), &exe).or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_perch"), &exe).map(drop)).unwrap();
    let out = Command::new(&exe)
        .current_dir(&dir)
        .env_remove("PERCH_HOME")
        .args(["run", "--quiet", "--report", "r.json"])
        .args(CAPTURE_ONLY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(json(&dir.join("r.json"))["frames"]["captured"], 3, "the 3-frame copy under share/perch was used");
    let out = perch_in(&dir).env("PERCH_HOME", prefix.join("share/perch")).args(["run", "--quiet", "--report", "r2.json"]).args(CAPTURE_ONLY).output().unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(json(&dir.join("r2.json"))["frames"]["captured"], 3);
    let out = perch_in(&dir).env("PERCH_HOME", &dir).args(["run"]).args(CAPTURE_ONLY).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out).1;
    assert!(e.contains("source.path") && e.contains("$PERCH_HOME") && e.contains("datasets/vtest"), "{e}");
}

#[test]
fn save_video_writes_an_mp4_through_ffmpeg() {
    if Command::new("ffmpeg").arg("-version").output().is_err() {
        perch_pipeline::fixtures::missing("save_video_writes_an_mp4_through_ffmpeg: no ffmpeg on PATH (apt-get install ffmpeg)");
        return;
    }
    let dir = scratch("video");
    let out = perch_in(&dir)
        .args(["run", "--quiet", "--config", "replay", "--save-video", "out/run.mp4", "--report", "r.json"])
        .args(CAPTURE_ONLY)
        .args(["--set", "source.end_frame=15", "--set", "source.pacing=max"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let r = json(&dir.join("r.json"));
    assert_eq!(r["taps"]["video"]["written"], 15);
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height,nb_read_frames,codec_name", "-of", "csv=p=0"])
        .arg(dir.join("out/run.mp4"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "h264,768,576,15");
}
