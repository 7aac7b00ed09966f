//! End-to-end runs of `perch run` on video: an H.264 MP4 made by ffmpeg from the vtest frames
//! (`nodes/capture/scripts/make-clip.sh`), a truncated copy, a GStreamer pipeline of the user's, and
//! a live RTSP stream from gst-rtsp-server on 127.0.0.1 that is killed and restarted mid-run.
//!
//! Needs the `video` feature (the CI build has it), ffmpeg, GStreamer's plugins and, for RTSP,
//! python3-gi with gst-rtsp-server (`.ci/apt.sh`).
#![cfg_attr(not(feature = "video"), allow(unused))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("video").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn perch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_perch"));
    c.current_dir(repo());
    c
}

#[cfg(not(feature = "video"))]
#[test]
fn without_the_video_feature_a_video_is_a_clear_error() {
    if perch_pipeline::fixtures::required() {
        panic!("PERCH_REQUIRE_FIXTURES=1: the video tests need `--features video` (see .ci/run)");
    }
    let dir = out_dir("no-feature");
    let clip = dir.join("clip.mp4");
    std::fs::write(&clip, b"not decoded").unwrap();
    let out = perch().args(["run", "--source"]).arg(&clip).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("built without video support"));
}

#[cfg(feature = "video")]
#[path = "../nodes/capture/tests/support/media.rs"]
mod media;

#[cfg(feature = "video")]
mod with_gstreamer {
    use super::media::{free_port, make_clip, RtspServer as Server};
    use super::*;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    fn run(args: &[&str], dir: &Path) -> (Output, serde_json::Value, Vec<serde_json::Value>) {
        let (report, dets) = (dir.join("report.json"), dir.join("detections.jsonl"));
        let out = perch()
            .arg("run")
            .args(args)
            .args(["--imgsz", "320", "-q", "--report"])
            .arg(&report)
            .arg("--detections")
            .arg(&dets)
            .output()
            .unwrap();
        let report = std::fs::read_to_string(&report).map(|s| serde_json::from_str(&s).unwrap()).unwrap_or(serde_json::Value::Null);
        let dets = std::fs::read_to_string(&dets).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (out, report, dets)
    }

    fn stderr(o: &Output) -> String {
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    fn counter(report: &serde_json::Value, name: &str) -> u64 {
        let capture = report["stages"].as_array().unwrap().iter().find(|s| s["name"] == "capture").unwrap();
        capture["counters"][name].as_u64().unwrap_or_else(|| panic!("no capture counter {name}: {capture}"))
    }

    /// The folder replay of the clip's frames: what the video runs are compared with.
    fn folder_detections(frames: u32, dir: &Path) -> Vec<serde_json::Value> {
        let (out, _, dets) = run(&["--source", "datasets/vtest", "--set", &format!("source.end_frame={frames}"), "--set", "source.pacing=\"max\""], dir);
        assert!(out.status.success(), "{}", stderr(&out));
        dets
    }

    fn iou(a: &[f64], b: &[f64]) -> f64 {
        let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
        let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
        let inter = ix * iy;
        inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
    }

    /// The stated tolerance between the decoded video and the JPEG frames it was made from (H.264
    /// at crf 18 re-quantises the pixels): every detection scoring ≥ 0.5 on one side has one of the
    /// same class on the other with IoU ≥ 0.7 and a score within 0.15 (measured on 30 frames:
    /// 164/164 matched, IoU ≥ 0.76, mean 0.98, score difference ≤ 0.06).
    fn assert_same_detections(a: &[serde_json::Value], b: &[serde_json::Value], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: frame counts");
        let mut matched = 0;
        for (fa, fb) in a.iter().zip(b) {
            assert_eq!(fa["source_index"], fb["source_index"], "{what}");
            for (x, y) in [(fa, fb), (fb, fa)] {
                for d in x["detections"].as_array().unwrap() {
                    if d["score"].as_f64().unwrap() < 0.5 {
                        continue;
                    }
                    let bbox: Vec<f64> = serde_json::from_value(d["bbox"].clone()).unwrap();
                    let best = y["detections"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|e| e["class_id"] == d["class_id"])
                        .map(|e| (iou(&bbox, &serde_json::from_value::<Vec<f64>>(e["bbox"].clone()).unwrap()), e["score"].as_f64().unwrap()))
                        .max_by(|p, q| p.0.total_cmp(&q.0));
                    let Some((best_iou, score)) = best else { panic!("{what}: frame {}: no match for {d}", fa["source_index"]) };
                    assert!(best_iou >= 0.7, "{what}: frame {}: best IoU {best_iou:.3} for {d}", fa["source_index"]);
                    assert!((score - d["score"].as_f64().unwrap()).abs() <= 0.15, "{what}: score {score} vs {d}");
                    matched += 1;
                }
            }
        }
        assert!(matched > 50, "{what}: only {matched} detections compared");
    }

    #[test]
    fn an_mp4_gives_the_detections_of_the_folder_it_was_made_from() {
        let dir = out_dir("mp4");
        let clip = dir.join("clip.mp4");
        make_clip(&clip, 30);
        let folder = folder_detections(30, &out_dir("mp4-folder"));
        let (out, report, dets) = run(&["--source", clip.to_str().unwrap(), "--set", "source.pacing=\"max\""], &dir);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(report["frames"]["captured"], 30);
        assert_eq!(report["frames"]["published"], 30, "pacing = max loses nothing");
        assert_eq!(report["source"]["fps"], 10.0);
        assert_same_detections(&folder, &dets, "mp4 (NV12 from the decoder)");
        // The same file through a pipeline of the user's, delivering YUY2 (the other camera layout).
        let pipeline = format!("filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=YUY2 ! appsink", clip.display());
        let (out, report, dets) = run(
            &["--set", "source.kind=\"gstreamer\"", "--set", &format!("source.pipeline={}", toml_str(&pipeline)), "--set", "source.pacing=\"max\""],
            &out_dir("gstreamer"),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(report["frames"]["published"], 30);
        assert_same_detections(&folder, &dets, "gstreamer pipeline (YUY2)");
    }

    fn toml_str(s: &str) -> String {
        toml::Value::String(s.into()).to_string()
    }

    #[test]
    fn a_truncated_mp4_publishes_the_frames_before_the_cut_and_says_so() {
        let dir = out_dir("truncated");
        let clip = dir.join("clip.mp4");
        make_clip(&clip, 40);
        let bytes = std::fs::read(&clip).unwrap();
        let cut = dir.join("cut.mp4");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let (out, report, dets) = run(&["--source", cut.to_str().unwrap(), "--set", "source.pacing=\"max\""], &dir);
        assert!(out.status.success(), "{}", stderr(&out));
        let published = report["frames"]["published"].as_u64().unwrap();
        assert!((10..40).contains(&published), "{published} frames before the cut");
        assert_eq!(dets.len() as u64, published);
        assert_eq!(report["invariant_ok"], true);
        assert_eq!(counter(&report, "stream_errors"), 1);
        assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
    }

    #[test]
    fn a_frame_the_decoder_drops_is_counted_and_the_rest_published() {
        let dir = out_dir("broken-frame");
        let avi = dir.join("mjpeg.avi");
        super::media::make_mjpeg_avi_with_a_broken_frame(&avi, 20, 5);
        let (out, report, dets) = run(&["--source", avi.to_str().unwrap(), "--set", "source.pacing=\"max\""], &dir);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(report["frames"]["captured"], 20);
        assert_eq!(report["frames"]["published"], 19);
        assert_eq!(report["frames"]["dropped"]["decode_error"], 1);
        assert_eq!(report["invariant_ok"], true);
        assert_eq!(dets.len(), 19);
        assert!(stderr(&out).contains("could not decode"), "{}", stderr(&out));
    }

    #[test]
    fn bad_video_input_is_a_clear_error() {
        let out = perch().args(["run", "--source", "no/such/clip.mp4"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("no such video file"), "{}", stderr(&out));
        let dir = out_dir("bad");
        let junk = dir.join("junk.mp4");
        std::fs::write(&junk, vec![7u8; 4096]).unwrap();
        let out = perch().args(["run", "--source"]).arg(&junk).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("junk.mp4"), "{}", stderr(&out));
        let out = perch()
            .args(["run", "--set", "source.kind=\"video\"", "--set", "source.url=\"rtsp://127.0.0.1:9/x\"", "--set", "source.loop=true"])
            .output()
            .unwrap();
        assert!(stderr(&out).contains("source.loop") && stderr(&out).contains("stream"), "{}", stderr(&out));
        let out = perch().args(["run", "--set", "source.kind=\"gstreamer\""]).output().unwrap();
        assert!(stderr(&out).contains("source.pipeline is not set"), "{}", stderr(&out));
    }

    #[test]
    fn an_rtsp_stream_runs_live_and_survives_a_server_restart() {
        let dir = out_dir("rtsp");
        let clip = dir.join("clip.mp4");
        make_clip(&clip, 200);
        let port = free_port();
        let server = Server::start(&clip, port);
        let dets = dir.join("detections.jsonl");
        let report = dir.join("report.json");
        let child = perch()
            .args(["run", "--source", &format!("rtsp://127.0.0.1:{port}/clip"), "--imgsz", "320", "-q"])
            .args(["--set", "source.end_frame=60", "--set", "source.reconnect_ms=300", "--set", "source.timeout_ms=3000"])
            .arg("--detections")
            .arg(&dets)
            .arg("--report")
            .arg(&report)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Kill the server once perch is publishing, bring it back 1.5 s later.
        let t0 = Instant::now();
        while std::fs::read_to_string(&dets).map_or(0, |s| s.lines().count()) < 10 {
            assert!(t0.elapsed() < Duration::from_secs(60), "perch published nothing from the stream");
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(server);
        std::thread::sleep(Duration::from_millis(1500));
        let _server = Server::start(&clip, port);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(report["invariant_ok"], true, "captured = published + dropped");
        assert_eq!(report["frames"]["captured"], 60, "source.end_frame = 60 counts frames across the reconnect");
        assert!(counter(&report, "disconnects") >= 1 && counter(&report, "reconnects") >= 1, "{report}");
        assert!(counter(&report, "downtime_ms") >= 1000, "{report}");
        let published = report["frames"]["published"].as_u64().unwrap();
        assert_eq!(std::fs::read_to_string(&dets).unwrap().lines().count() as u64, published);
        assert!(published >= 30, "{published} of 60 published");
    }
}
