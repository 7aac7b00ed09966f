//! `perch run`: assemble the pipeline from a config, run it, print and write the report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;
use perch_capture::{DeviceSpec, SourceConfig, SourceKind};

use super::run_flags::{Shorthands, ViewFlags};
use crate::{assemble, jsonl, outputs, paths};

#[derive(Args)]
pub struct RunArgs {
    /// TOML config (keys: configs/README.md): a file, or a shipped config by name (`nano`); without
    /// it, the default job (the built-in defaults, = configs/replay.toml). Relative paths inside a
    /// config file are relative to the file's folder.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Where frames come from, replacing `[source]`'s kind and locator: a camera index (`0`), a camera
    /// device (`/dev/video2`, `/dev/v4l/by-id/...`), a folder of frames (`datasets/vtest`), a video file
    /// (`clip.mp4`, `.mkv`, `.avi`, `.mov`, ...) or an RTSP stream (`rtsp://host:8554/path`); the last two
    /// need `--features video`. Keys of the other kinds are dropped; `--set source.*` still applies on top.
    #[arg(long, value_name = "SOURCE")]
    source: Option<String>,
    /// Override one key: `--set source.pacing=max` (repeatable; values are TOML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Write the run report as JSON (schema `perch.report/2`, see README).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write every published frame's detections as JSON lines (seq, source index/time, fresh, detection
    /// age, boxes in source pixels, class, score, track id, predicted and age per box).
    #[arg(long, value_name = "FILE")]
    detections: Option<PathBuf>,
    #[command(flatten)]
    shorthands: Shorthands,
    #[command(flatten)]
    view: ViewFlags,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // First: a Ctrl-C while the model loads or warms up still ends the run with a report.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("second interrupt: exiting without a report (result files keep their whole lines)");
                outputs::exit_between_writes(130);
            }
            eprintln!("interrupt: stopping the source, counting frames in flight as `shutdown`");
        })
        .context("installing the Ctrl-C/SIGTERM handler")?;
    }
    let sets = [args.sets.clone(), args.shorthands.sets(&args.sets)?].concat();
    let mut cfg = paths::load_job(args.config.as_deref(), &sets)?.config;
    if let Some(value) = &args.source {
        apply_source(&mut cfg.source, infer_source(value)?);
    }
    // Result destinations are created before anything long starts.
    outputs::check_distinct(args.report.as_deref(), args.detections.as_deref())?;
    let report_file = args.report.as_deref().map(outputs::ReportFile::open).transpose()?;
    let detections = args.detections.as_deref().map(jsonl::JsonlTap::create).transpose()?;
    let mut pipeline = assemble::assemble(&cfg)?;
    pipeline.taps.extend(args.view.taps(&cfg)?);
    if let Some(tap) = detections {
        pipeline.taps.push(Box::new(tap));
    }
    let report = pipeline.run(stop)?;
    print!("{}", report.table());
    let all_written = outputs::finish(&report, report_file);
    args.view.check(&report)?;
    if !report.invariant_ok {
        eprintln!("error: frame accounting does not balance: a frame vanished or ended twice");
        return Ok(ExitCode::from(3));
    }
    if !all_written {
        return Ok(ExitCode::from(outputs::EXIT_OUTPUT_LOST));
    }
    Ok(ExitCode::SUCCESS)
}

/// What a `--source` value names. The one place that reads it.
#[derive(Debug, PartialEq)]
enum SourceArg {
    Camera(DeviceSpec),
    Folder(PathBuf),
    /// A video file (mp4, mkv, avi, mov, ...): `kind = "video"`, `path`.
    VideoFile(PathBuf),
    /// A stream URL (`rtsp://...`): `kind = "video"`, `url`.
    Stream(String),
}

/// File name endings read as video (anything GStreamer's decodebin plays works with `kind = "video"`;
/// these are what `--source` recognises without it).
const VIDEO_EXTENSIONS: &[&str] = &["mp4", "m4v", "mkv", "webm", "avi", "mov", "ts", "mts", "h264", "h265", "264", "265"];

fn infer_source(value: &str) -> anyhow::Result<SourceArg> {
    if value.is_empty() {
        bail!("--source needs a value: a camera index (0), a device (/dev/video0), a folder of frames, a video file or an rtsp:// URL");
    }
    if let Some((scheme, _)) = value.split_once("://") {
        if matches!(scheme.to_ascii_lowercase().as_str(), "rtsp" | "rtsps" | "rtspt" | "rtspu") {
            return Ok(SourceArg::Stream(value.to_string()));
        }
        bail!("--source {value}: perch reads rtsp:// streams; for other URLs use [source] kind = \"gstreamer\" with a pipeline");
    }
    if value.bytes().all(|b| b.is_ascii_digit()) || value.starts_with("/dev/") {
        return Ok(SourceArg::Camera(DeviceSpec::parse(value)));
    }
    let path = Path::new(value);
    if leads_to_a_device(path) {
        return Ok(SourceArg::Camera(DeviceSpec::Path(value.to_string())));
    }
    if path.is_dir() {
        return Ok(SourceArg::Folder(path.to_path_buf()));
    }
    let video_name = path.extension().and_then(|e| e.to_str()).is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    if path.is_file() && video_name {
        return Ok(SourceArg::VideoFile(path.to_path_buf()));
    }
    if path.exists() {
        bail!(
            "--source {value}: is a file perch does not recognise as video (.{}); for another container set \
             --set source.kind='\"video\"' --set source.path='\"{value}\"'",
            VIDEO_EXTENSIONS.join(", .")
        );
    }
    if video_name {
        bail!("--source {value}: no such video file");
    }
    bail!("--source {value}: no such folder or file, and not a camera (an index like 0, or a /dev/video* device)");
}

/// A character device, or a link into /dev (a stable camera name kept elsewhere, e.g. by a udev rule).
fn leads_to_a_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else { return false };
    if meta.file_type().is_char_device() {
        return true;
    }
    meta.file_type().is_symlink()
        && std::fs::read_link(path).is_ok_and(|t| t.starts_with("/dev/") || (t.is_relative() && path.starts_with("/dev/")))
}

/// Replace the source's kind and locator. Keys only the other kind reads go back to their defaults
/// (a replay's `loop` on a camera, a camera's `width` on a folder); shared keys (`fps`, `end_frame`)
/// and keys of the new kind stay, so `--set source.width=640 --source 0` works in either order.
fn apply_source(src: &mut SourceConfig, arg: SourceArg) {
    match arg {
        SourceArg::Camera(device) => {
            src.kind = SourceKind::Camera;
            src.device = Some(device);
            clear(src, &[Group::File, Group::Rtsp, Group::Other]);
        }
        SourceArg::Folder(path) => {
            src.kind = SourceKind::Replay;
            src.path = path;
            clear(src, &[Group::Device, Group::Link, Group::Rtsp, Group::Other]);
        }
        SourceArg::VideoFile(path) => {
            src.kind = SourceKind::Video;
            src.path = path;
            clear(src, &[Group::Device, Group::Link, Group::Rtsp, Group::Other]);
        }
        SourceArg::Stream(url) => {
            src.kind = SourceKind::Video;
            clear(src, &[Group::File, Group::Device, Group::Other]);
            src.url = Some(url);
        }
    }
}

/// `[source]` keys by who reads them, for [`apply_source`] to reset what the new kind does not read.
enum Group {
    /// A folder's or a file's: where it is, its pacing and which part of it plays.
    File,
    /// A camera's device and mode.
    Device,
    /// Cameras' and streams': losing the frames and getting them back.
    Link,
    /// An RTSP stream's.
    Rtsp,
    /// A user's GStreamer pipeline and a ROS 2 topic (their kinds come from a config, never `--source`).
    Other,
}

fn clear(src: &mut SourceConfig, groups: &[Group]) {
    let d = SourceConfig::default();
    for g in groups {
        match g {
            Group::File => {
                (src.path, src.pacing, src.looping, src.start_frame) = (d.path.clone(), d.pacing, d.looping, d.start_frame);
                (src.start_s, src.end_s) = (None, None);
            }
            Group::Device => (src.device, src.width, src.height, src.format) = (None, None, None, None),
            Group::Link => (src.timeout_ms, src.reconnect_ms, src.reconnect) = (None, None, None),
            Group::Rtsp => (src.url, src.transport, src.latency_ms) = (None, None, None),
            Group::Other => (src.pipeline, src.topic, src.message, src.qos) = (None, None, None, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_is_inferred_from_the_value() {
        assert_eq!(infer_source("0").unwrap(), SourceArg::Camera(DeviceSpec::Index(0)));
        assert_eq!(infer_source("/dev/video2").unwrap(), SourceArg::Camera(DeviceSpec::Path("/dev/video2".into())));
        let by_id = "/dev/v4l/by-id/usb-046d_C920-video-index0";
        assert_eq!(infer_source(by_id).unwrap(), SourceArg::Camera(DeviceSpec::Path(by_id.into())));
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/vtest");
        assert_eq!(infer_source(dir).unwrap(), SourceArg::Folder(dir.into()));
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        assert!(infer_source(file).unwrap_err().to_string().contains("does not recognise as video"));
        let e = infer_source("datasets/nope").unwrap_err().to_string();
        assert!(e.contains("no such folder") && e.contains("datasets/nope"), "{e}");
        assert!(infer_source("clip.mp4").unwrap_err().to_string().contains("no such video file"));
        let clip = std::env::temp_dir().join(format!("perch-source-{}.MKV", std::process::id()));
        std::fs::write(&clip, b"x").unwrap();
        assert_eq!(infer_source(clip.to_str().unwrap()).unwrap(), SourceArg::VideoFile(clip.clone()));
        std::fs::remove_file(&clip).unwrap();
        assert_eq!(infer_source("rtsp://cam.local:8554/live").unwrap(), SourceArg::Stream("rtsp://cam.local:8554/live".into()));
        assert!(infer_source("http://x/y.mjpg").unwrap_err().to_string().contains("rtsp://"));
        assert!(infer_source("").is_err());
        let link = std::env::temp_dir().join(format!("perch-source-link-{}", std::process::id()));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/dev/video4", &link).unwrap();
        let value = link.display().to_string();
        assert_eq!(infer_source(&value).unwrap(), SourceArg::Camera(DeviceSpec::Path(value.clone())));
        std::fs::remove_file(&link).unwrap();
    }

    #[test]
    fn switching_kind_drops_the_other_kinds_keys() {
        let mut src = SourceConfig { looping: true, start_frame: 5, fps: Some(5.0), reconnect_ms: Some(50), ..Default::default() };
        apply_source(&mut src, SourceArg::Camera(DeviceSpec::Index(1)));
        assert_eq!((src.kind, src.device.clone(), src.looping, src.start_frame), (SourceKind::Camera, Some(DeviceSpec::Index(1)), false, 0));
        assert_eq!((src.fps, src.reconnect_ms), (Some(5.0), Some(50)), "shared and camera keys set with --set stay");
        src.width = Some(640);
        src.height = Some(480);
        apply_source(&mut src, SourceArg::Camera(DeviceSpec::Index(2)));
        assert_eq!(src.width, Some(640), "same kind: the camera keys stay");
        apply_source(&mut src, SourceArg::Folder("datasets/vtest".into()));
        assert_eq!((src.kind, src.device.clone(), src.width, src.reconnect_ms), (SourceKind::Replay, None, None, None));
        assert_eq!(src.fps, Some(5.0));
        // A ROS 2 config with --source clip.mp4 / rtsp://: the topic keys go, the stream keys stay for a stream.
        let mut src = SourceConfig { kind: SourceKind::Ros2, topic: Some("/cam".into()), qos: Some(Default::default()), ..Default::default() };
        apply_source(&mut src, SourceArg::VideoFile("clip.mp4".into()));
        assert_eq!((src.kind, src.topic.clone(), src.qos.clone()), (SourceKind::Video, None, None));
        perch_capture::keys::check(&src).unwrap();
        src.looping = true;
        src.transport = Some(perch_capture::RtspTransport::Udp);
        apply_source(&mut src, SourceArg::Stream("rtsp://h/x".into()));
        assert_eq!((src.url.as_deref(), src.looping, src.path.clone()), (Some("rtsp://h/x"), false, SourceConfig::default().path));
        assert_eq!(src.transport, Some(perch_capture::RtspTransport::Udp), "a stream key given with --set stays");
        perch_capture::keys::check(&src).unwrap();
        apply_source(&mut src, SourceArg::Folder("datasets/vtest".into()));
        assert_eq!((src.url.clone(), src.transport), (None, None));
    }
}
